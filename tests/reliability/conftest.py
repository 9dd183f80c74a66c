"""Fixtures of the reliability suite: a real daemon process per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hivetest import DaemonProcess


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    """A started `hive-c0re serve` on the local backend, stopped after the test."""
    # Sockets only: the tests drive the agents' sockets themselves, no harness pops messages.
    proc = DaemonProcess(tmp_path, HYPERHIVE_HARNESS="false")
    proc.start()
    yield proc
    proc.stop()

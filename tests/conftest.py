"""Shared fixtures. Keep this small and generic: domain fixtures live next to their tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from standin.api import StandIn


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    """The pinned claude CLI: ``$HYPERHIVE_TEST_CLAUDE`` or ``claude`` on PATH. Never skipped."""
    found = os.environ.get("HYPERHIVE_TEST_CLAUDE") or shutil.which("claude")
    if not found or not Path(found).is_file():
        pytest.fail(
            "the claude CLI was not found: install the pinned version "
            "(npm install @anthropic-ai/claude-code@<claude-version>) and set "
            "HYPERHIVE_TEST_CLAUDE to its bin/claude, or put claude on PATH",
            pytrace=False,
        )
    return Path(found)


@pytest.fixture(scope="session")
def standin() -> Iterator[StandIn]:
    """One Anthropic API stand-in per test process; tests keep apart by API key."""
    with StandIn() as server:
        yield server

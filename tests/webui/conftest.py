"""Web UI fixtures: every test here runs on the session loop (see tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _session_loop_for_every_test(on_the_session_loop: None) -> None:
    """The browser and the module harnesses live on the session loop."""

"""Container backends behind one interface (SPEC §10)."""

from __future__ import annotations

import logging
from typing import Protocol

from hyperhive.lifecycle.paths import AgentPaths

logger = logging.getLogger(__name__)


class Backend(Protocol):
    """What the lifecycle service needs from a way of running agents."""

    name: str

    async def start(self, paths: AgentPaths) -> None:
        """Start the agent's container (or process); idempotent."""

    async def stop(self, paths: AgentPaths) -> None:
        """Stop it; idempotent."""

    def is_running(self, paths: AgentPaths) -> bool:
        """Whether it runs now."""

    async def journal(self, paths: AgentPaths, lines: int) -> list[str]:
        """The last `lines` log lines of the agent's harness (journalctl -M on nixos)."""

    async def close(self) -> None:
        """Stop everything this backend supervises (daemon shutdown)."""


class LocalBackend:
    """No isolation: the zero-setup default for trying hyperhive on one machine.

    At this stage the backend only tracks which agents are started; harness processes are
    supervised here once the harness exists.
    """

    name = "local"

    def __init__(self) -> None:
        self._running: set[str] = set()
        logger.warning(
            "backend 'local': agents run as plain processes on this machine, NOT isolated"
            " from it or from each other; use the nspawn or nixos backend for containment"
        )

    async def start(self, paths: AgentPaths) -> None:
        """Mark the agent started."""
        self._running.add(paths.name)

    async def stop(self, paths: AgentPaths) -> None:
        """Mark the agent stopped."""
        self._running.discard(paths.name)

    def is_running(self, paths: AgentPaths) -> bool:
        """Whether start was called last."""
        return paths.name in self._running

    async def journal(self, paths: AgentPaths, lines: int) -> list[str]:
        """The tail of the harness log file, if there is one."""
        log = paths.root / "harness.log"
        if not log.exists():
            return []
        return log.read_text(errors="replace").splitlines()[-lines:]

    async def close(self) -> None:
        """Nothing to stop yet."""
        self._running.clear()

"""The ``local`` backend: no isolation, each harness a child process of the daemon.

The zero-setup way to try hyperhive on a laptop. Agents see the whole machine as the
daemon's user: nothing here is a security boundary, and the daemon says so at start.
"""

from __future__ import annotations

import logging
import sys

from hyperhive.agents.paths import AgentPaths
from hyperhive.lifecycle.backends import build_from_repo, tail_file
from hyperhive.lifecycle.harness_env import harness_argv, harness_environment
from hyperhive.lifecycle.repos import AgentConfig
from hyperhive.lifecycle.supervisor import Supervisor
from hyperhive.settings import Settings

logger = logging.getLogger(__name__)

HARNESS_MODULE = "hyperhive.cli.harness"


class LocalBackend:
    """Harness processes on this machine, with the agent's own directories."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._supervisor = Supervisor(HARNESS_MODULE, settings.stop_timeout_seconds)
        # Agents "started" while harnesses are switched off (HYPERHIVE_HARNESS=false).
        self._started: set[str] = set()
        logger.warning(
            "backend 'local': agents run as plain processes on this machine, NOT isolated"
            " from it or from each other; use the nspawn or nixos backend for containment"
        )

    async def build(self, paths: AgentPaths) -> AgentConfig:
        """Check the applied agent.nix (there is no system to build)."""
        return await build_from_repo(paths)

    async def start(self, paths: AgentPaths) -> None:
        """Start the harness process (or only mark the agent started without harnesses)."""
        self._started.add(paths.name)
        if not self._settings.harness:
            return
        paths.create()
        for directory in (paths.socket_dir, paths.claude, paths.state):
            paths.verify_bind_source(directory)
        env = harness_environment(self._settings, paths, inside=False)
        await self._supervisor.start(
            paths.name,
            harness_argv(sys.executable, paths),
            env,
            paths.harness_log,
            paths.pidfile("harness"),
            cwd=paths.state,
        )
        logger.info(
            "%s: harness started (local, pid file %s)", paths.name, paths.pidfile("harness")
        )

    async def stop(self, paths: AgentPaths) -> None:
        """SIGTERM the harness and wait for it."""
        self._started.discard(paths.name)
        await self._supervisor.stop(paths.name)

    async def remove(self, paths: AgentPaths) -> None:
        """Nothing exists besides the process."""
        await self.stop(paths)

    async def is_running(self, paths: AgentPaths) -> bool:
        """Whether the harness process runs."""
        if not self._settings.harness:
            return paths.name in self._started
        return self._supervisor.running(paths.name)

    async def adopt(self, paths: AgentPaths) -> bool:
        """Take over a harness a previous daemon left running."""
        if not self._settings.harness:
            return False
        paths.forget_legacy_files()
        # The argv is the same for every agent; the pid file is what is per agent.
        return self._supervisor.adopt(paths.name, paths.pidfile("harness"), "serve")

    async def journal(self, paths: AgentPaths, lines: int) -> list[str]:
        """The tail of the harness log file."""
        return tail_file(paths.harness_log, lines)

    async def close(self) -> None:
        """Stop every harness."""
        self._started.clear()
        await self._supervisor.close()

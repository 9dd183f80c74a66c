"""Start-up reconcile (SPEC §10): the agent table made true again after the daemon starts.

In order, from `Hive.start`: `migrate_layout` (old repo layout), `ensure_manager`,
`reconnect_all` (adopt what still runs, start what should, stop what should not, finish
a destroy or spawn a restart cut short); then, in the background, `auto_update` (rebuild
what another hyperhive flake built). The verbs it uses are `Lifecycle`'s.
"""

from __future__ import annotations

import logging

from hyperhive.agents.names import MANAGER, AgentName
from hyperhive.agents.registry import Registry
from hyperhive.agents.store import AgentState
from hyperhive.broker.service import Broker
from hyperhive.lifecycle import repos
from hyperhive.lifecycle.service import KICK_STARTED, Lifecycle, SocketHook
from hyperhive.settings import Settings
from hyperhive.wire.roles import Role

logger = logging.getLogger(__name__)


class Reconcile:
    """What the daemon does once at start-up, before and beside the verbs."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        broker: Broker,
        lifecycle: Lifecycle,
        register_socket: SocketHook,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._broker = broker
        self._lifecycle = lifecycle
        self._register_socket = register_socket

    def migrate_layout(self) -> list[str]:
        """Move old ``agents/<name>/config`` repos to ``proposed/<name>``."""
        return repos.migrate_layout(self._settings.state_dir)

    async def ensure_manager(self) -> None:
        """Register the manager (socket, state dirs) and make sure it runs."""
        lifecycle = self._lifecycle
        backend = lifecycle.backend
        paths = lifecycle.paths(MANAGER)
        paths.create()
        record = self._registry.find(MANAGER)
        if record is None:
            record = await self._registry.claim_manager()
        if not self._registry.is_local(record):
            logger.info("the hive's manager runs on host %s", record.host)
            return
        await self._register_socket(MANAGER, Role.MANAGER)
        lifecycle.logins.seen(MANAGER, lifecycle.logged_in(MANAGER))
        if record.state is AgentState.STOPPED:
            return
        # Under the verb's lock: crash_watch must not take a restart below for a crash.
        try:
            async with lifecycle.verb(MANAGER, None, on_error=AgentState.FAILED, live=False):
                running = await backend.adopt(paths)
                stale = getattr(backend, "stale_binds", None)
                if running and stale is not None and stale(paths):
                    # A manager left running by an older daemon still has the old /agents
                    # bind (the whole agents/ tree): restart it with the current binds.
                    logger.warning("the running manager has outdated bind mounts; restarting")
                    await backend.stop(paths)
                    running = False
                if not running:
                    await backend.start(paths)
                await self._registry.set_state(MANAGER, AgentState.RUNNING)
        except Exception:
            logger.exception("the manager could not be started")

    async def reconnect_all(self) -> None:
        """Reconcile the agent table with what really runs.

        Agents meant to run get their socket back and are adopted or started; stopped
        ones are stopped if something still runs; a destroy cut short is finished.
        """
        lifecycle = self._lifecycle
        backend = lifecycle.backend
        for record in self._registry.local():
            if not record.live or record.name == MANAGER:
                continue
            name = AgentName(record.name)
            paths = lifecycle.paths(name)
            lifecycle.logins.seen(name, lifecycle.logged_in(name))
            if record.state is AgentState.DESTROYING:
                await lifecycle.destroy(name)
                continue
            await self._register_socket(name, record.role)
            try:
                running = await backend.adopt(paths)
                if record.state in (AgentState.STOPPED, AgentState.STOPPING):
                    if running:
                        await backend.stop(paths)
                    await self._registry.set_state(name, AgentState.STOPPED)
                elif record.state is AgentState.FAILED:
                    if running:
                        await self._registry.set_state(name, AgentState.RUNNING)
                elif record.state is AgentState.SPAWNING and not (paths.applied / ".git").exists():
                    await lifecycle.finish_spawn(name, revived=False)
                else:
                    if not running:
                        await backend.start(paths)
                        await self._broker.kick_agent(name, KICK_STARTED)
                    await self._registry.set_state(name, AgentState.RUNNING)
            except Exception:
                logger.exception("%s: could not be brought back at startup", name)
                await self._registry.set_state(name, AgentState.FAILED)

    async def auto_update(self) -> list[str]:
        """Rebuild every agent built from another hyperhive flake revision; their names."""
        rebuilt: list[str] = []
        for record in self._registry.local():
            if record.live and record.name != MANAGER and self._lifecycle.is_stale(record.name):
                logger.info("%s: built from another hyperhive revision; rebuilding", record.name)
                try:
                    await self._lifecycle.rebuild(record.name)
                    rebuilt.append(record.name)
                except Exception:
                    logger.exception("auto_update of %s failed", record.name)
        return rebuilt

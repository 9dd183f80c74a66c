"""Agent verbs: spawn, kill, start, restart, rebuild, destroy, purge (SPEC §10)."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Awaitable, Callable

from hyperhive.approvals import store as approvals_store
from hyperhive.broker.service import Broker
from hyperhive.db.connection import Database
from hyperhive.errors import Conflict, Forbidden, NotFound
from hyperhive.lifecycle.backends import Backend
from hyperhive.lifecycle.names import MANAGER, AgentName, agent_port, validate_name
from hyperhive.lifecycle.paths import AgentPaths
from hyperhive.lifecycle.registry import Registry
from hyperhive.lifecycle.store import AgentRecord, AgentState, Role
from hyperhive.settings import Settings

logger = logging.getLogger(__name__)

SocketHook = Callable[[AgentName, Role], Awaitable[None]]
UnhookSocket = Callable[[AgentName], Awaitable[None]]


class Lifecycle:
    """Creates, starts, stops and removes agents through one backend."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        registry: Registry,
        broker: Broker,
        backend: Backend,
        register_socket: SocketHook,
        unregister_socket: UnhookSocket,
    ) -> None:
        self._settings = settings
        self._db = db
        self._registry = registry
        self._broker = broker
        self.backend = backend
        self._register_socket = register_socket
        self._unregister_socket = unregister_socket

    def paths(self, name: AgentName) -> AgentPaths:
        """Host paths of an agent."""
        return AgentPaths.of(self._settings, name)

    def _port_conflict(self, name: AgentName) -> AgentRecord | None:
        port = agent_port(name)
        for other in self._registry.all():
            if other.live and other.name != name and agent_port(other.name) == port:
                return other
        return None

    async def ensure_manager(self) -> None:
        """Register the manager (and its socket) if it is not yet known."""
        paths = self.paths(MANAGER)
        paths.create()
        record = self._registry.find(MANAGER)
        if record is None:
            await self._registry.add(MANAGER, Role.MANAGER)
        await self._register_socket(MANAGER, Role.MANAGER)
        await self.backend.start(paths)
        await self._registry.set_state(MANAGER, AgentState.RUNNING)

    async def reconnect_all(self) -> None:
        """At startup: give every live agent its socket back and start it."""
        for record in self._registry.all():
            if not record.live or record.name == MANAGER:
                continue
            name = AgentName(record.name)
            await self._register_socket(name, record.role)
            if record.state is not AgentState.STOPPED:
                await self.backend.start(self.paths(name))
                await self._registry.set_state(name, AgentState.RUNNING)

    async def spawn(self, raw_name: str) -> AgentRecord:
        """Create and start an agent (reusing kept state if it was destroyed)."""
        name = validate_name(raw_name)
        existing = self._registry.find(name)
        if existing is not None and existing.live:
            raise Conflict(f"agent {name!r} already exists ({existing.state})")
        clash = self._port_conflict(name)
        if clash is not None:
            raise Conflict(
                f"agent {name!r} would get web UI port {agent_port(name)}, already used by"
                f" agent {clash.name!r}; rename one of them"
            )
        paths = self.paths(name)
        paths.create()
        revived = existing is not None
        await self._registry.add(name, Role.AGENT)
        await self._register_socket(name, Role.AGENT)
        await self.backend.start(paths)
        record = await self._registry.set_state(name, AgentState.RUNNING)
        await self._broker.system_event(MANAGER, "spawned", agent=name, revived=revived)
        await self._broker.kick_agent(
            name,
            "you were just started — your notes are in /state; check your inbox with recv",
        )
        logger.info("spawned %s%s", name, " (revived)" if revived else "")
        return record

    def _live(self, raw_name: str, *, caller: str | None = None) -> AgentRecord:
        name = validate_name(raw_name) if raw_name != MANAGER else MANAGER
        if caller == MANAGER and name == MANAGER:
            raise Forbidden("the manager cannot kill, start or restart itself")
        record = self._registry.get(name)
        if not record.live:
            raise Conflict(f"agent {name!r} is destroyed; revive it first")
        return record

    async def kill(self, raw_name: str, *, caller: str | None = None) -> AgentRecord:
        """Stop an agent's container; it keeps its socket and queue."""
        record = self._live(raw_name, caller=caller)
        name = AgentName(record.name)
        await self._registry.set_state(name, AgentState.STOPPING)
        await self.backend.stop(self.paths(name))
        await self._broker.system_event(MANAGER, "killed", agent=name)
        return await self._registry.set_state(name, AgentState.STOPPED)

    async def start(self, raw_name: str, *, caller: str | None = None) -> AgentRecord:
        """Start a stopped agent."""
        record = self._live(raw_name, caller=caller)
        name = AgentName(record.name)
        await self._registry.set_state(name, AgentState.STARTING)
        await self.backend.start(self.paths(name))
        await self._broker.kick_agent(
            name, "you were just started — your notes are in /state, your session continues"
        )
        return await self._registry.set_state(name, AgentState.RUNNING)

    async def restart(self, raw_name: str, *, caller: str | None = None) -> AgentRecord:
        """Stop and start an agent."""
        record = self._live(raw_name, caller=caller)
        name = AgentName(record.name)
        await self._registry.set_state(name, AgentState.RESTARTING)
        paths = self.paths(name)
        await self.backend.stop(paths)
        await self.backend.start(paths)
        await self._broker.kick_agent(
            name, "you were just restarted — your notes are in /state, your session continues"
        )
        return await self._registry.set_state(name, AgentState.RUNNING)

    async def rebuild(self, raw_name: str, *, caller: str | None = None) -> AgentRecord:
        """Idempotent reconcile: stop, start, kick (containers rebuild from git later)."""
        record = self._live(raw_name, caller=caller)
        name = AgentName(record.name)
        await self._registry.set_state(name, AgentState.REBUILDING)
        await self._register_socket(name, record.role)
        paths = self.paths(name)
        await self.backend.stop(paths)
        await self.backend.start(paths)
        await self._broker.system_event(MANAGER, "rebuilt", agent=name)
        await self._broker.kick_agent(
            name, "you were just rebuilt — your notes are in /state, your session continues"
        )
        return await self._registry.set_state(name, AgentState.RUNNING)

    async def destroy(self, raw_name: str, *, purge: bool = False) -> None:
        """Remove an agent's container and socket; keep its trees unless `purge`."""
        name = validate_name(raw_name)
        record = self._registry.find(name)
        if record is None:
            raise NotFound(f"no agent named {name!r}")
        paths = self.paths(name)
        if record.live:
            await self._registry.set_state(name, AgentState.DESTROYING)
            await self.backend.stop(paths)
            await self._unregister_socket(name)
            now = int(time.time())
            await self._db.write(
                lambda conn: approvals_store.fail_pending_for(conn, name, "agent destroyed", now)
            )
            await self._registry.set_state(name, AgentState.DESTROYED)
            await self._broker.system_event(MANAGER, "destroyed", agent=name, purged=purge)
        if purge:
            await self.purge(name)

    async def purge(self, raw_name: str) -> None:
        """Delete a destroyed agent's trees for good; refused while it is live."""
        name = validate_name(raw_name)
        record = self._registry.get(name)
        if record.live or self.backend.is_running(self.paths(name)):
            raise Conflict(f"agent {name!r} is live; destroy it before purging")
        paths = self.paths(name)
        for tree in (paths.root, paths.applied, paths.socket_dir):
            shutil.rmtree(tree, ignore_errors=True)
        await self._registry.forget(name)
        logger.info("purged %s", name)

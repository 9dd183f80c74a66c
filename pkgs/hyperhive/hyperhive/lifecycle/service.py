"""Agent verbs (SPEC §10): spawn, revive, kill, start, restart, rebuild, destroy, purge.

Every state change goes through the Registry (which publishes it on the hub); while a
verb runs, the agent shows its transient state (spawning, starting, ...). Verbs on one
agent run one at a time (a lock per name); crash_watch leaves an agent alone while a
verb holds its lock.

Architecture Invariant: a name reaches `paths()` only after `validate_name` (or it is
the manager's fixed name).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable

from hyperhive import safefs
from hyperhive.agents.names import MANAGER, AgentName, agent_port, validate_name
from hyperhive.agents.paths import AgentPaths
from hyperhive.agents.registry import Registry
from hyperhive.agents.store import AgentRecord, AgentState
from hyperhive.broker.service import Broker
from hyperhive.db.connection import Database
from hyperhive.errors import Conflict, Forbidden, NotFound
from hyperhive.lifecycle import repos
from hyperhive.lifecycle.backends import Backend, BuildFailed
from hyperhive.lifecycle.git import Git
from hyperhive.settings import Settings
from hyperhive.tasks import TaskSet
from hyperhive.wire.responses import NEEDS_LOGIN_HINT
from hyperhive.wire.roles import Role

logger = logging.getLogger(__name__)

SocketHook = Callable[[AgentName, Role], Awaitable[None]]
UnhookSocket = Callable[[AgentName], Awaitable[None]]
DestroyHook = Callable[[str], Awaitable[None]]

KICK_STARTED = "you were just started — your notes are in /state; check your inbox with recv"
KICK_RESTARTED = "you were just restarted — your notes are in /state, your session continues"
KICK_REBUILT = (
    "you were just rebuilt with your applied config — your notes are in /state,"
    " your session continues"
)


PATHS_CACHE_MAX = 4096
"""AgentPaths kept per name before the cache starts over."""


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
        self.git = Git(settings.git)
        self._register_socket = register_socket
        self._unregister_socket = unregister_socket
        # Set by the daemon: fails the agent's pending approvals (through Approvals).
        self.on_destroyed: DestroyHook | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks = TaskSet()
        self._logged_in: dict[str, bool] = {}
        self._fresh: set[str] = set()
        self._stale_told: dict[str, str] = {}
        self._paths: dict[str, AgentPaths] = {}

    # -- helpers ---------------------------------------------------------------------------

    def paths(self, name: AgentName) -> AgentPaths:
        """Host paths of an agent (built once per name: the dashboard asks for every agent's
        on every render, and AgentPaths is immutable)."""
        paths = self._paths.get(name)
        if paths is None:
            if len(self._paths) >= PATHS_CACHE_MAX:  # names from outside: keep it bounded
                self._paths.clear()
            paths = self._paths[name] = AgentPaths.of(self._settings, name)
        return paths

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def busy(self, name: str) -> bool:
        """Whether a verb is running on `name` now."""
        lock = self._locks.get(name)
        return lock is not None and lock.locked()

    async def wait_idle(self) -> None:
        """Wait for background verbs (spawns approved from the dashboard) to finish."""
        await self._tasks.wait_idle()

    async def close(self) -> None:
        """Cancel background verbs (daemon shutdown)."""
        await self._tasks.close()

    def _port_conflict(self, name: AgentName) -> AgentRecord | None:
        port = agent_port(name)
        for other in self._registry.local():
            if other.name != name and agent_port(other.name) == port:
                return other
        return None

    def _named(self, raw_name: str, *, caller: str | None = None) -> AgentName:
        name = MANAGER if raw_name == MANAGER else validate_name(raw_name)
        if caller == MANAGER and name == MANAGER:
            raise Forbidden("the manager cannot kill, start, restart or rebuild itself")
        return name

    def _live(self, name: AgentName) -> AgentRecord:
        record = self._registry.get(name)
        self.check_local(record)
        if not record.live:
            raise Conflict(f"agent {name!r} is destroyed (state kept); revive it first")
        return record

    def check_local(self, record: AgentRecord) -> None:
        """Only the host that runs an agent acts on its container, repos and socket."""
        if not self._registry.is_local(record):
            raise Conflict(
                f"agent {record.name!r} runs on host {record.host!r}, not on this host"
                f" ({self._registry.host!r}): use hive-c0re or the dashboard on"
                f" {record.host!r}"
            )

    def deployment(self, name: str) -> tuple[str | None, bool]:
        """(deployed applied sha or None, stale?) from one read of the deploy record.

        Stale: last built from another hyperhive flake than the current one.
        """
        if name == MANAGER:
            return None, False
        record = repos.deployed_record(self.paths(AgentName(name)))
        stale = bool(record) and record.get("flake_ref", "") != self._settings.flake_ref
        return record.get("sha") or None, stale

    def is_stale(self, name: str) -> bool:
        """Whether the agent was last built from another hyperhive flake than the current."""
        return self.deployment(name)[1]

    async def journal(self, raw_name: str, lines: int) -> list[str]:
        """The last `lines` log lines of a registered agent's harness (the journal viewer)."""
        name = MANAGER if raw_name == MANAGER else validate_name(raw_name)
        self.check_local(self._registry.get(name))
        return await self.backend.journal(self.paths(name), lines)

    def login_hint(self, name: str) -> str | None:
        """Why a message to `name` will sit unanswered (a live agent with no login), or None.

        What the operator is told after a send, on the CLI and the dashboard alike.
        """
        record = self._registry.find(name)
        if record is None or not record.live or not self._registry.is_local(record):
            return None  # another host's agent: its own host knows its login
        if self.logged_in(name):
            return None
        return f"{name} {NEEDS_LOGIN_HINT} (the message waits in its inbox until then)"

    def logged_in(self, name: str) -> bool:
        """Whether the agent has claude credentials (or an API key is passed through)."""
        if os.environ.get("ANTHROPIC_API_KEY"):
            return True
        credentials = self.paths(AgentName(name)).claude / ".credentials.json"
        return safefs.is_regular_file(self._settings.state_dir, credentials)

    # -- startup -----------------------------------------------------------------------------

    async def ensure_manager(self) -> None:
        """Register the manager (socket, state dirs) and make sure it runs."""
        paths = self.paths(MANAGER)
        paths.create()
        record = self._registry.find(MANAGER)
        if record is None:
            record = await self._registry.claim_manager()
        if not self._registry.is_local(record):
            logger.info("the hive's manager runs on host %s", record.host)
            return
        await self._register_socket(MANAGER, Role.MANAGER)
        self._logged_in[MANAGER] = self.logged_in(MANAGER)
        if record.state is AgentState.STOPPED:
            return
        # The lock: crash_watch must not take a restart below for a crash.
        async with self._lock(MANAGER):
            try:
                running = await self.backend.adopt(paths)
                stale = getattr(self.backend, "stale_binds", None)
                if running and stale is not None and stale(paths):
                    # A manager left running by an older daemon still has the old /agents
                    # bind (the whole agents/ tree): restart it with the current binds.
                    logger.warning("the running manager has outdated bind mounts; restarting")
                    await self.backend.stop(paths)
                    running = False
                if not running:
                    await self.backend.start(paths)
            except Exception:
                logger.exception("the manager could not be started")
                await self._registry.set_state(MANAGER, AgentState.FAILED)
                return
            await self._registry.set_state(MANAGER, AgentState.RUNNING)

    async def reconnect_all(self) -> None:
        """At startup: reconcile the agent table with what really runs.

        Agents meant to run get their socket back and are adopted or started; stopped
        ones are stopped if something still runs; a destroy cut short is finished.
        """
        for record in self._registry.local():
            if not record.live or record.name == MANAGER:
                continue
            name = AgentName(record.name)
            paths = self.paths(name)
            self._logged_in[name] = self.logged_in(name)
            if record.state is AgentState.DESTROYING:
                await self._destroy_locked(name, record, purge=False)
                continue
            await self._register_socket(name, record.role)
            try:
                running = await self.backend.adopt(paths)
                if record.state in (AgentState.STOPPED, AgentState.STOPPING):
                    if running:
                        await self.backend.stop(paths)
                    await self._registry.set_state(name, AgentState.STOPPED)
                elif record.state is AgentState.FAILED:
                    if running:
                        await self._registry.set_state(name, AgentState.RUNNING)
                elif record.state is AgentState.SPAWNING and not (paths.applied / ".git").exists():
                    await self.finish_spawn(name, revived=False)
                else:
                    if not running:
                        await self.backend.start(paths)
                        await self._broker.kick_agent(name, KICK_STARTED)
                    await self._registry.set_state(name, AgentState.RUNNING)
            except Exception:
                logger.exception("%s: could not be brought back at startup", name)
                await self._registry.set_state(name, AgentState.FAILED)

    async def auto_update(self) -> list[str]:
        """Rebuild every agent built from another hyperhive flake revision; their names."""
        rebuilt: list[str] = []
        for record in self._registry.local():
            if record.live and record.name != MANAGER and self.is_stale(record.name):
                logger.info("%s: built from another hyperhive revision; rebuilding", record.name)
                try:
                    await self.rebuild(record.name)
                    rebuilt.append(record.name)
                except Exception:
                    logger.exception("auto_update of %s failed", record.name)
        return rebuilt

    # -- spawn / revive ----------------------------------------------------------------------

    def spawn_record(self, raw_name: str) -> tuple[AgentRecord, bool]:
        """Check a spawn may happen; (the record to store in state spawning, revived)."""
        name = validate_name(raw_name)
        existing = self._registry.find(name)
        if existing is not None and existing.live:
            where = "" if self._registry.is_local(existing) else f" on host {existing.host!r}"
            raise Conflict(f"agent {name!r} already exists{where} ({existing.state})")
        if existing is not None:
            self.check_local(existing)  # its kept state lives on the host that ran it
        clash = self._port_conflict(name)
        if clash is not None:
            kept = "" if clash.live else " (destroyed, state kept: purge it to free the port)"
            raise Conflict(
                f"agent {name!r} would get web UI port {agent_port(name)}, already used by"
                f" agent {clash.name!r}{kept}; rename one of them"
            )
        if self.busy(name):
            raise Conflict(f"agent {name!r} is busy; try again in a moment")
        repos.check_adoptable(self.paths(name))
        record = AgentRecord(
            name=name,
            role=Role.AGENT,
            state=AgentState.SPAWNING,
            created_at=int(time.time()),
            allowed_recipients=list(existing.allowed_recipients) if existing else [],
            host=self._registry.host,
        )
        return record, existing is not None

    async def begin_spawn(self, raw_name: str) -> tuple[AgentRecord, bool]:
        """Check and register a spawn (state spawning); (record, revived)."""
        record, revived = self.spawn_record(raw_name)
        return await self._registry.claim_spawn(record), revived

    async def spawn(self, raw_name: str) -> AgentRecord:
        """Create and start an agent; a destroyed one is revived with its kept state."""
        record, revived = await self.begin_spawn(raw_name)
        return await self.finish_spawn(AgentName(record.name), revived)

    async def revive(self, raw_name: str) -> AgentRecord:
        """Bring back a destroyed (kept) agent with its state and credentials."""
        name = validate_name(raw_name)
        existing = self._registry.get(name)
        if existing.live:
            raise Conflict(f"agent {name!r} is not destroyed ({existing.state}); nothing to revive")
        return await self.spawn(name)

    async def finish_spawn(self, name: AgentName, revived: bool) -> AgentRecord:
        async with self._lock(name):
            paths = self.paths(name)
            try:
                paths.create()
                await repos.seed(
                    self.git, paths, self._settings.agent_template_dir, self._pronouns()
                )
                await repos.ensure_identity(self.git, paths, self._pronouns())
                config = await self.backend.build(paths)
                await self._registry.set_allowed_recipients(name, config.allowed_recipients)
                await self._register_socket(name, Role.AGENT)
                await self.backend.start(paths)
                repos.write_deployed_record(
                    paths, self._settings.flake_ref, await self.git.head(paths.applied)
                )
            except Exception as exc:
                logger.exception("spawn of %s failed", name)
                await self._registry.set_state(name, AgentState.FAILED)
                detail = exc.tail if isinstance(exc, BuildFailed) else str(exc)
                await self._broker.system_event(
                    MANAGER, "spawn_failed", agent=name, error=detail[-2000:]
                )
                raise
            self._fresh.add(name)
            record = await self._registry.set_state(name, AgentState.RUNNING)
        await self._broker.system_event(MANAGER, "spawned", agent=name, revived=revived)
        await self._broker.kick_agent(name, KICK_STARTED)
        logger.info("spawned %s%s", name, " (revived)" if revived else "")
        return record

    def _pronouns(self) -> str | None:
        return self._settings.operator_pronouns or None

    async def kept_head(self, raw_name: str) -> str | None:
        """The applied main a spawn of `raw_name` would deploy as it is (a revive); None
        when a spawn would seed a fresh repo from the template."""
        paths = self.paths(validate_name(raw_name))
        if not repos.is_real_dir(paths.applied / ".git"):
            return None
        return await self.git.resolve_commit(paths.applied, "refs/heads/main")

    async def revive_diff(self, raw_name: str, sha: str) -> str:
        """The diff from the agent template to kept applied commit `sha` (what a revive
        deploys beyond a fresh spawn)."""
        paths = self.paths(validate_name(raw_name))
        return await repos.revive_diff(
            self.git, paths, self._settings.agent_template_dir, self._pronouns(), sha
        )

    def migrate_layout(self) -> list[str]:
        """At start-up: move old ``agents/<name>/config`` repos to ``proposed/<name>``."""
        return repos.migrate_layout(self._settings.state_dir)

    # -- kill / start / restart / rebuild -------------------------------------------------------

    async def kill(self, raw_name: str, *, caller: str | None = None) -> AgentRecord:
        """Stop an agent's container; it keeps its socket and queue."""
        name = self._named(raw_name, caller=caller)
        async with self._lock(name):
            self._live(name)
            await self._registry.set_state(name, AgentState.STOPPING)
            await self.backend.stop(self.paths(name))
            record = await self._registry.set_state(name, AgentState.STOPPED)
        await self._broker.system_event(MANAGER, "killed", agent=name)
        return record

    async def start(self, raw_name: str, *, caller: str | None = None) -> AgentRecord:
        """Start a stopped (or crashed) agent."""
        name = self._named(raw_name, caller=caller)
        async with self._lock(name):
            before = self._live(name).state
            await self._registry.set_state(name, AgentState.STARTING)
            try:
                await self.backend.start(self.paths(name))
            except Exception:
                await self._registry.set_state(name, before)
                raise
            record = await self._registry.set_state(name, AgentState.RUNNING)
        await self._broker.kick_agent(name, KICK_STARTED)
        return record

    async def restart(self, raw_name: str, *, caller: str | None = None) -> AgentRecord:
        """Stop and start an agent."""
        name = self._named(raw_name, caller=caller)
        async with self._lock(name):
            self._live(name)
            await self._registry.set_state(name, AgentState.RESTARTING)
            paths = self.paths(name)
            try:
                await self.backend.stop(paths)
                await self.backend.start(paths)
            except Exception:
                await self._registry.set_state(name, AgentState.FAILED)
                raise
            record = await self._registry.set_state(name, AgentState.RUNNING)
        await self._broker.kick_agent(name, KICK_RESTARTED)
        return record

    async def rebuild(self, raw_name: str, *, caller: str | None = None) -> AgentRecord:
        """Idempotent reconcile from the applied repo: build, socket, stop, start, kick.

        A failed build raises BuildFailed and leaves the running container as it was.
        A stopped agent is built but stays stopped.
        """
        name = self._named(raw_name, caller=caller)
        async with self._lock(name):
            before = self._live(name).state
            paths = self.paths(name)
            await self._registry.set_state(name, AgentState.REBUILDING)
            try:
                if name != MANAGER:
                    paths.create()
                    await repos.seed(
                        self.git, paths, self._settings.agent_template_dir, self._pronouns()
                    )
                    await repos.ensure_identity(self.git, paths, self._pronouns())
                config = await self.backend.build(paths)
            except Exception:
                await self._registry.set_state(name, before)
                raise
            role = Role.MANAGER if name == MANAGER else Role.AGENT
            if name != MANAGER:
                await self._registry.set_allowed_recipients(name, config.allowed_recipients)
            await self._register_socket(name, role)
            keep_stopped = before is AgentState.STOPPED
            try:
                await self.backend.stop(paths)
                if not keep_stopped:
                    await self.backend.start(paths)
            except Exception:
                await self._registry.set_state(name, AgentState.FAILED)
                raise
            if name != MANAGER:
                repos.write_deployed_record(
                    paths, self._settings.flake_ref, await self.git.head(paths.applied)
                )
            self._stale_told.pop(name, None)
            record = await self._registry.set_state(
                name, AgentState.STOPPED if keep_stopped else AgentState.RUNNING
            )
        await self._broker.system_event(MANAGER, "rebuilt", agent=name)
        if not keep_stopped:
            await self._broker.kick_agent(name, KICK_REBUILT)
        return record

    # -- destroy / purge -------------------------------------------------------------------------

    async def destroy(self, raw_name: str, *, purge: bool = False) -> None:
        """Remove an agent's container and socket; keep its trees unless `purge`."""
        name = validate_name(raw_name)
        record = self._registry.find(name)
        if record is None:
            raise NotFound(f"no agent named {name!r}")
        self.check_local(record)
        if record.live:
            async with self._lock(name):
                await self._destroy_locked(name, self._registry.get(name), purge=purge)
        if purge:
            await self.purge(name)

    async def _destroy_locked(self, name: AgentName, record: AgentRecord, *, purge: bool) -> None:
        paths = self.paths(name)
        await self._registry.set_state(name, AgentState.DESTROYING)
        try:
            await self.backend.remove(paths)
        except Exception:
            await self._registry.set_state(name, AgentState.FAILED)
            raise
        await self._unregister_socket(name)
        if self.on_destroyed is not None:
            await self.on_destroyed(name)
        await self._registry.set_state(name, AgentState.DESTROYED)
        self._logged_in.pop(name, None)
        await self._broker.system_event(MANAGER, "destroyed", agent=name, purged=purge)
        logger.info("destroyed %s (state kept in %s)", name, paths.root)

    async def purge(self, raw_name: str) -> None:
        """Delete a destroyed agent's trees for good; refused while it is live."""
        name = validate_name(raw_name)
        record = self._registry.get(name)
        self.check_local(record)
        paths = self.paths(name)
        if record.live or await self.backend.is_running(paths):
            raise Conflict(f"agent {name!r} is live; destroy it before purging")
        async with self._lock(name):
            for tree in (paths.root, paths.config, paths.applied, paths.socket_dir, paths.host):
                if tree.is_symlink():
                    tree.unlink()  # never removes what a planted link points to
                else:
                    shutil.rmtree(tree, ignore_errors=True)
            repos.forget_mirror(paths)
            await self._registry.forget(name)
        logger.info("purged %s", name)

    # -- crash watch ------------------------------------------------------------------------------

    async def check_once(self) -> None:
        """One crash_watch pass: crashes, login changes, staleness (SPEC §10)."""
        for record in self._registry.local():
            if not record.live or self.busy(record.name):
                continue
            name = AgentName(record.name)
            paths = self.paths(name)
            running = await self.backend.is_running(paths)
            if self.busy(name):
                continue  # a verb started while we looked
            current = self._registry.get(name)
            if current.state is AgentState.RUNNING and not running:
                logger.warning("%s: container stopped without an operator verb", name)
                await self._registry.set_state(name, AgentState.FAILED)
                await self._broker.system_event(MANAGER, "container_crash", agent=name)
            elif current.state is AgentState.FAILED and running:
                await self._registry.set_state(name, AgentState.RUNNING)
            await self._check_login(name)
            if self.is_stale(name) and self._stale_told.get(name) != self._settings.flake_ref:
                self._stale_told[name] = self._settings.flake_ref
                await self._broker.system_event(MANAGER, "needs_update", agent=name)

    async def _check_login(self, name: AgentName) -> None:
        now = self.logged_in(name)
        before = self._logged_in.get(name)
        self._logged_in[name] = now
        fresh = name in self._fresh
        self._fresh.discard(name)
        if before != now:
            # The dashboard's "needs login" badge comes or goes (a first look too: the row
            # drawn at spawn said "needs login", and the login may beat this pass).
            self._registry.touch(name)
        if name == MANAGER:
            return  # the manager could not read its own needs_login without a login
        if before is None:
            # First look: news only for an agent spawned since the daemon started.
            if fresh and not now:
                await self._broker.system_event(MANAGER, "needs_login", agent=name)
            return
        if before != now:
            # The news replaces its opposite still waiting in the manager's inbox.
            await self._broker.system_event(
                MANAGER,
                "logged_in" if now else "needs_login",
                supersedes=("needs_login", "logged_in"),
                agent=name,
            )

    async def watch_forever(self, on_tick: Callable[[], Awaitable[object]] | None = None) -> None:
        """crash_watch: every `crash_watch_seconds`, compare and report."""
        while True:
            await asyncio.sleep(self._settings.crash_watch_seconds)
            try:
                await self.check_once()
                if on_tick is not None:
                    await on_tick()
            except Exception:
                logger.exception("crash_watch pass failed")

"""Agent verbs (SPEC §10): spawn, revive, kill, start, restart, rebuild (`update` on the
sockets), destroy, purge. What each one means is said in one place: docs/lifecycle.md,
"Verbs".

Every verb has one shape, `Lifecycle.verb`: the agent's lock (verbs on one agent run one
at a time, and crash_watch leaves an agent alone while a verb holds it), its transient
state (spawning, starting, ...) while the backend works, the state a failure leaves, and
the event to the manager after. Every state change goes through the Registry, which
publishes it on the hub.

What runs beside the verbs is composed with them by the daemon: the start-up reconcile
(`lifecycle/reconcile.py`) and crash_watch (`lifecycle/watch.py`), which share the login
memory of `lifecycle/logins.py`.

Architecture Invariant: a name reaches `paths()` only after `validate_name` (or it is
the manager's fixed name).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from hyperhive import safefs
from hyperhive.agents.names import MANAGER, AgentName, agent_port, validate_name
from hyperhive.agents.paths import AgentPaths
from hyperhive.agents.registry import Registry
from hyperhive.agents.store import AgentRecord, AgentState
from hyperhive.broker.service import Broker
from hyperhive.errors import Conflict, Forbidden, NotFound
from hyperhive.lifecycle import repos
from hyperhive.lifecycle.backends import Backend, BuildFailed
from hyperhive.lifecycle.git import Git
from hyperhive.lifecycle.logins import LoginSightings
from hyperhive.lifecycle.repos import AgentConfig
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


class Restore(enum.Enum):
    """`Lifecycle.verb`'s `on_error`: back to the state the agent had before the verb."""

    BEFORE = "before"


class Step:
    """A verb under way on one agent (see `Lifecycle.verb`)."""

    def __init__(self, before: AgentState, on_error: AgentState | None) -> None:
        self.before = before
        """The agent's state when the verb took its lock."""
        self.on_error = on_error
        """The state a failure from here leaves; None: the transient state stays."""


class Lifecycle:
    """Creates, starts, stops and removes agents through one backend."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        broker: Broker,
        backend: Backend,
        register_socket: SocketHook,
        unregister_socket: UnhookSocket,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._broker = broker
        self.backend = backend
        self.git = Git(settings.git)
        self._register_socket = register_socket
        self._unregister_socket = unregister_socket
        # Set by the daemon: fails the agent's pending approvals (through Approvals).
        self.on_destroyed: DestroyHook | None = None
        self.logins = LoginSightings()
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks = TaskSet()
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

    @contextlib.asynccontextmanager
    async def verb(
        self,
        name: AgentName,
        during: AgentState | None,
        *,
        on_error: AgentState | Restore | None = Restore.BEFORE,
        live: bool = True,
    ) -> AsyncIterator[Step]:
        """The shape of every verb: hold `name`'s lock, check it is live (unless not
        `live`), show the transient state `during` (None: the state stays as it is), run
        the block, which ends by setting the state it leads to. If the block raises, the
        state becomes `on_error` (`Restore.BEFORE`: the one it had; None: `during` stays;
        the block may change it as it goes, `Step.on_error`) and the error propagates. The
        verb's event to the manager comes after the block, with the lock released."""
        async with self._lock(name):
            record = self._live(name) if live else self._registry.get(name)
            step = Step(record.state, record.state if on_error is Restore.BEFORE else on_error)
            if during is not None:
                await self._registry.set_state(name, during)
            try:
                yield step
            except Exception:
                if step.on_error is not None:
                    await self._registry.set_state(name, step.on_error)
                raise

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
        """Build, open the socket of and start an agent registered in state spawning."""
        try:
            async with self.verb(name, None, on_error=AgentState.FAILED, live=False):
                paths = self.paths(name)
                config = await self._build(name, paths)
                await self._registry.set_allowed_recipients(name, config.allowed_recipients)
                await self._register_socket(name, Role.AGENT)
                await self.backend.start(paths)
                await self._record_deployed(paths)
                self.logins.spawned(name)
                record = await self._registry.set_state(name, AgentState.RUNNING)
        except Exception as exc:
            logger.exception("spawn of %s failed", name)
            detail = exc.tail if isinstance(exc, BuildFailed) else str(exc)
            await self._broker.system_event(
                MANAGER, "spawn_failed", agent=name, error=detail[-2000:]
            )
            raise
        await self._broker.system_event(MANAGER, "spawned", agent=name, revived=revived)
        await self._broker.kick_agent(name, KICK_STARTED)
        logger.info("spawned %s%s", name, " (revived)" if revived else "")
        return record

    async def _build(self, name: AgentName, paths: AgentPaths) -> AgentConfig:
        """Seed an agent's repos (the first time), restore its identity file, build it."""
        if name != MANAGER:
            paths.create()
            await repos.seed(self.git, paths, self._settings.agent_template_dir, self._pronouns())
            await repos.ensure_identity(self.git, paths, self._pronouns())
        return await self.backend.build(paths)

    async def _record_deployed(self, paths: AgentPaths) -> None:
        """Note what the agent now runs: the applied main and the hyperhive flake."""
        head = await self.git.head(paths.applied)
        repos.write_deployed_record(paths, self._settings.flake_ref, head)

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

    # -- kill / start / restart / rebuild -------------------------------------------------------

    async def kill(self, raw_name: str, *, caller: str | None = None) -> AgentRecord:
        """Stop an agent's container; it keeps its socket and queue."""
        name = self._named(raw_name, caller=caller)
        # A stop that fails leaves `stopping`: the next start-up stops the agent for good.
        async with self.verb(name, AgentState.STOPPING, on_error=None):
            await self.backend.stop(self.paths(name))
            record = await self._registry.set_state(name, AgentState.STOPPED)
        await self._broker.system_event(MANAGER, "killed", agent=name)
        return record

    async def start(self, raw_name: str, *, caller: str | None = None) -> AgentRecord:
        """Start a stopped (or crashed) agent."""
        name = self._named(raw_name, caller=caller)
        async with self.verb(name, AgentState.STARTING):
            await self.backend.start(self.paths(name))
            record = await self._registry.set_state(name, AgentState.RUNNING)
        await self._broker.kick_agent(name, KICK_STARTED)
        return record

    async def restart(self, raw_name: str, *, caller: str | None = None) -> AgentRecord:
        """Stop and start an agent."""
        name = self._named(raw_name, caller=caller)
        async with self.verb(name, AgentState.RESTARTING, on_error=AgentState.FAILED):
            paths = self.paths(name)
            await self.backend.stop(paths)
            await self.backend.start(paths)
            record = await self._registry.set_state(name, AgentState.RUNNING)
        await self._broker.kick_agent(name, KICK_RESTARTED)
        return record

    async def rebuild(self, raw_name: str, *, caller: str | None = None) -> AgentRecord:
        """Idempotent reconcile from the applied repo: build, socket, stop, start, kick.

        A failed build raises BuildFailed and leaves the running container as it was.
        A stopped agent is built but stays stopped.
        """
        name = self._named(raw_name, caller=caller)
        async with self.verb(name, AgentState.REBUILDING) as step:
            keep_stopped = step.before is AgentState.STOPPED
            paths = self.paths(name)
            config = await self._build(name, paths)
            step.on_error = AgentState.FAILED  # past the build: the old container goes
            if name != MANAGER:
                await self._registry.set_allowed_recipients(name, config.allowed_recipients)
            await self._register_socket(name, Role.MANAGER if name == MANAGER else Role.AGENT)
            await self.backend.stop(paths)
            if not keep_stopped:
                await self.backend.start(paths)
            if name != MANAGER:
                await self._record_deployed(paths)
            record = await self._registry.set_state(
                name, AgentState.STOPPED if keep_stopped else AgentState.RUNNING
            )
        await self._broker.system_event(MANAGER, "rebuilt", agent=name)
        if not keep_stopped:
            await self._broker.kick_agent(name, KICK_REBUILT)
        return record

    # -- destroy / purge -------------------------------------------------------------------------

    async def destroy(self, raw_name: str, *, purge: bool = False) -> None:
        """Remove an agent's container and socket; keep its trees unless `purge`.

        Also finishes a destroy cut short (state destroying), at start-up."""
        name = validate_name(raw_name)
        record = self._registry.find(name)
        if record is None:
            raise NotFound(f"no agent named {name!r}")
        self.check_local(record)
        if record.live:
            paths = self.paths(name)
            failed = AgentState.FAILED
            async with self.verb(name, AgentState.DESTROYING, on_error=failed, live=False) as step:
                await self.backend.remove(paths)
                step.on_error = None  # cut short from here: the next start-up finishes it
                await self._unregister_socket(name)
                if self.on_destroyed is not None:
                    await self.on_destroyed(name)
                await self._registry.set_state(name, AgentState.DESTROYED)
                self.logins.forget(name)
            await self._broker.system_event(MANAGER, "destroyed", agent=name, purged=purge)
            logger.info("destroyed %s (state kept in %s)", name, paths.root)
        if purge:
            await self.purge(name)

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

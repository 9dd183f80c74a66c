"""hive-c0re: the host daemon. Composes the services, opens the sockets, runs the sweeps.

The dashboard does not import this module: it takes the services through its own interface
(`dashboard.services.HiveServices`), and `cli/c0re_serve.py` starts the two together.
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Callable

from hyperhive import logrepeat, safefs
from hyperhive.agents.names import MANAGER, OPERATOR, AgentName
from hyperhive.agents.paths import AgentPaths
from hyperhive.agents.registry import Registry
from hyperhive.approvals.service import Approvals
from hyperhive.broker.service import Broker, SendLimits
from hyperhive.credentials import KEY_FILE, OperatorSecret
from hyperhive.db.open import open_broker_db
from hyperhive.errors import Unavailable
from hyperhive.hub import Hub
from hyperhive.lifecycle.backends import Backend
from hyperhive.lifecycle.factory import make_backend
from hyperhive.lifecycle.reconcile import Reconcile
from hyperhive.lifecycle.service import Lifecycle
from hyperhive.lifecycle.watch import CrashWatch
from hyperhive.questions.service import QuestionService
from hyperhive.retention import sweep_forever
from hyperhive.settings import Settings
from hyperhive.sockets.dispatch import Dispatcher
from hyperhive.sockets.server import Connection, Identity, SocketServer
from hyperhive.tasks import TaskSet
from hyperhive.wire.roles import Role, SocketKind

logger = logging.getLogger(__name__)


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (systemd's soft default is 1,024:
    every open connection holds one); return the limits now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft != hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            logger.warning("cannot raise the open-files limit from %d to %d: %s", soft, hard, exc)
    return soft, hard


class Hive:
    """Everything the daemon runs, wired together."""

    def __init__(self, settings: Settings, backend: Backend | None = None) -> None:
        self.settings = settings
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        self.db = open_broker_db(settings)
        self.hub = Hub()
        self.registry = Registry(self.db, self.hub, settings.host_name)
        self.broker = Broker(
            self.db,
            self.registry,
            self.hub,
            SendLimits(
                rate_per_second=settings.send_rate_per_second,
                burst=settings.send_burst,
                max_unacked_bytes=settings.max_unacked_bytes_per_sender,
            ),
        )
        self.questions = QuestionService(
            self.db, self.broker, self.hub, settings.max_open_questions_per_agent
        )
        self.lifecycle = Lifecycle(
            settings,
            self.registry,
            self.broker,
            backend or make_backend(settings),
            self.register_socket,
            self.unregister_socket,
        )
        self.reconcile = Reconcile(
            settings, self.registry, self.broker, self.lifecycle, self.register_socket
        )
        self.watch = CrashWatch(settings, self.registry, self.broker, self.lifecycle)
        self.approvals = Approvals(self.db, self.registry, self.broker, self.lifecycle, self.hub)
        self.lifecycle.on_destroyed = self._fail_approvals_of
        self.credentials = OperatorSecret(settings.state_dir / "operator-secret")
        self.dashboard_url: str | None = None
        self.on_rotate: list[Callable[[], None]] = []
        """Called after the secret changed (the dashboard closes its live streams)."""
        self.dispatcher = Dispatcher(
            self.registry, self.broker, self.questions, self.lifecycle, self.approvals, self
        )
        self.sockets: dict[str, SocketServer] = {}
        self._tasks = TaskSet()

    async def register_socket(self, name: AgentName, role: Role) -> None:
        """(Re)open the socket of `name`; an existing listener is dropped first."""
        await self.unregister_socket(name)
        paths = AgentPaths.of(self.settings, name)
        kind = SocketKind.MANAGER if role is Role.MANAGER else SocketKind.AGENT
        server = SocketServer(
            paths.socket,
            Identity(kind, name),
            self.dispatcher.handle,
            self._on_close,
            0o660,
            self.settings.max_connections_per_socket,
            root=self.settings.run_dir,
            staging=paths.socket_staging,
        )
        await server.start()
        self.sockets[name] = server
        self._write_page_key(name, paths)

    def _write_page_key(self, name: AgentName, paths: AgentPaths) -> None:
        """Hand `name`'s harness its web UI key, in its own socket directory only."""
        try:
            safefs.write_atomic(
                self.settings.run_dir,
                paths.socket_dir / KEY_FILE,
                self.credentials.page_key(name).encode(),
                mode=0o600,
            )
        except (OSError, safefs.UnsafePath) as exc:
            # The agent works without its page; the operator sees why in the log.
            logger.error("%s: web UI key not written (%s): its page will answer 401", name, exc)

    def login_url(self) -> str:
        """The dashboard URL that logs a browser in (the key is in the #fragment)."""
        if self.dashboard_url is None:
            raise Unavailable("the dashboard is not running: see the hive-c0re log")
        return f"{self.dashboard_url}/login#key={self.credentials.dashboard_key()}"

    async def rotate_secret(self) -> None:
        """New operator secret: new page keys for every agent, every browser session ends."""
        self.credentials.rotate()
        for name in [n for n in self.sockets if n]:
            self._write_page_key(AgentName(name), AgentPaths.of(self.settings, AgentName(name)))
        for callback in self.on_rotate:
            callback()

    async def unregister_socket(self, name: AgentName) -> None:
        """Close the socket of `name`, if open."""
        server = self.sockets.pop(name, None)
        if server is not None:
            await server.stop()

    async def _fail_approvals_of(self, name: str) -> None:
        await self.approvals.fail_pending_for(name, "agent destroyed")

    async def _on_close(self, conn: Connection) -> None:
        if conn.unacked:
            await self.broker.release(conn.identity.name, sorted(conn.unacked))

    async def start(self) -> None:
        """Open sockets, reconnect known agents, start the background tasks."""
        logrepeat.install()
        soft, _ = raise_fd_limit()
        logger.info("open-files limit %d", soft)
        await self.registry.claim_unhosted()
        await self.approvals.claim_unhosted()
        await self.db.start()  # hear other hosts from here on (PostgreSQL)
        released = await self.broker.release_all()
        if released:
            logger.info("%d delivered-but-unacked message(s) will be delivered again", released)
        host = SocketServer(
            self.settings.host_socket,
            Identity(SocketKind.HOST, OPERATOR),
            self.dispatcher.handle,
            self._on_close,
            0o600,
            self.settings.max_connections_per_socket,
        )
        await host.start()
        self.sockets[""] = host
        self.reconcile.migrate_layout()
        await self.reconcile.ensure_manager()
        await self.reconcile.reconnect_all()
        await self.approvals.reap_orphans()
        await self.approvals.resume()
        self._tasks.spawn(self._auto_update(), "auto-update")
        self._tasks.spawn(self.watch.watch_forever(self.approvals.reap_orphans), "crash-watch")
        self._tasks.spawn(self.questions.watch_deadlines(), "question-deadlines")
        self._tasks.spawn(sweep_forever(self.settings, self.broker), "retention-sweep")
        manager = self.registry.find(MANAGER)
        logger.info(
            "hive-c0re up: backend %s, host %s, admin socket %s, %s",
            self.lifecycle.backend.name,
            self.registry.host,
            self.settings.host_socket,
            f"manager socket {AgentPaths.of(self.settings, MANAGER).socket}"
            if manager is None or self.registry.is_local(manager)
            else f"the manager runs on host {manager.host}",
        )

    async def _auto_update(self) -> None:
        rebuilt = await self.reconcile.auto_update()
        if rebuilt:
            logger.info("auto_update rebuilt %s", ", ".join(rebuilt))

    async def stop(self) -> None:
        """Stop tasks, sockets and the backend, then close the database."""
        await self._tasks.close()
        await self.approvals.close()
        await self.lifecycle.close()
        # Harnesses first: they would otherwise log a lost broker connection on the way out.
        await self.lifecycle.backend.close()
        for server in list(self.sockets.values()):
            await server.stop()
        self.sockets.clear()
        await self.db.close()

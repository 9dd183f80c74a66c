"""hive-c0re: the host daemon. Composes the services, opens the sockets, runs the sweeps."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from hyperhive.approvals.service import Approvals
from hyperhive.broker.service import Broker
from hyperhive.dashboard import start_dashboard
from hyperhive.db.connection import Database
from hyperhive.db.schema import BROKER_MIGRATIONS
from hyperhive.http import BoundApp
from hyperhive.hub import Hub
from hyperhive.lifecycle.backends import Backend, make_backend
from hyperhive.lifecycle.names import MANAGER, OPERATOR, AgentName
from hyperhive.lifecycle.paths import AgentPaths
from hyperhive.lifecycle.registry import Registry
from hyperhive.lifecycle.service import Lifecycle
from hyperhive.lifecycle.store import Role
from hyperhive.questions.service import QuestionService
from hyperhive.retention import sweep_forever
from hyperhive.settings import Settings
from hyperhive.sockets.dispatch import Dispatcher
from hyperhive.sockets.server import Connection, Identity, SocketKind, SocketServer
from hyperhive.tasks import TaskSet

logger = logging.getLogger(__name__)


class Hive:
    """Everything the daemon runs, wired together."""

    def __init__(self, settings: Settings, backend: Backend | None = None) -> None:
        self.settings = settings
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(settings.broker_db, BROKER_MIGRATIONS)
        self.hub = Hub()
        self.registry = Registry(self.db, self.hub)
        self.broker = Broker(self.db, self.registry, self.hub)
        self.questions = QuestionService(self.db, self.broker, self.hub)
        self.lifecycle = Lifecycle(
            settings,
            self.db,
            self.registry,
            self.broker,
            backend or make_backend(settings),
            self.register_socket,
            self.unregister_socket,
        )
        self.approvals = Approvals(self.db, self.registry, self.broker, self.lifecycle, self.hub)
        self.lifecycle.on_destroyed = self._fail_approvals_of
        self.dispatcher = Dispatcher(
            self.registry, self.broker, self.questions, self.lifecycle, self.approvals
        )
        self.sockets: dict[str, SocketServer] = {}
        self._tasks = TaskSet()

    async def register_socket(self, name: AgentName, role: Role) -> None:
        """(Re)open the socket of `name`; an existing listener is dropped first."""
        await self.unregister_socket(name)
        paths = AgentPaths.of(self.settings, name)
        kind = SocketKind.MANAGER if role is Role.MANAGER else SocketKind.AGENT
        server = SocketServer(
            paths.socket, Identity(kind, name), self.dispatcher.handle, self._on_close, 0o660
        )
        await server.start()
        self.sockets[name] = server

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
        released = await self.broker.release_all()
        if released:
            logger.info("%d delivered-but-unacked message(s) will be delivered again", released)
        host = SocketServer(
            self.settings.host_socket,
            Identity(SocketKind.HOST, OPERATOR),
            self.dispatcher.handle,
            self._on_close,
            0o600,
        )
        await host.start()
        self.sockets[""] = host
        self.lifecycle.migrate_layout()
        await self.lifecycle.ensure_manager()
        await self.lifecycle.reconnect_all()
        await self.approvals.reap_orphans()
        await self.approvals.resume()
        self._tasks.spawn(self._auto_update(), "auto-update")
        self._tasks.spawn(self.lifecycle.watch_forever(self.approvals.reap_orphans), "crash-watch")
        self._tasks.spawn(self.questions.watch_deadlines(), "question-deadlines")
        self._tasks.spawn(sweep_forever(self.settings, self.broker), "retention-sweep")
        logger.info(
            "hive-c0re up: backend %s, admin socket %s, manager socket %s",
            self.lifecycle.backend.name,
            self.settings.host_socket,
            AgentPaths.of(self.settings, MANAGER).socket,
        )

    async def _auto_update(self) -> None:
        rebuilt = await self.lifecycle.auto_update()
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


async def serve(settings: Settings) -> None:
    """Run the daemon until SIGINT or SIGTERM."""
    hive = Hive(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await hive.start()
    dashboard: BoundApp | None = None
    try:
        dashboard = await start_dashboard(hive)
    except OSError as exc:
        # Agents keep working without the page, and the CLI still has operator authority.
        logger.error("dashboard not started: %s", exc)
    where = dashboard.url if dashboard else "not running"
    print(f"hive-c0re: ready — admin socket {settings.host_socket}, dashboard {where}", flush=True)
    try:
        await stop.wait()
    finally:
        logger.info("hive-c0re shutting down")
        if dashboard is not None:
            await dashboard.stop()  # closes the SSE streams first
        await hive.stop()

"""One JSON-lines unix-socket server per identity, and the table of them.

Architecture Invariant: the identity of a request is the socket it arrived on; nothing in
a request can change it. Operator-only commands are answered on host.sock only.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
import socket
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from hyperhive import safefs
from hyperhive.errors import HyperhiveError
from hyperhive.sockets.protocol import MAX_LINE, TOO_LONG, TooLong, parse_request, read_line
from hyperhive.wire.requests import COMMANDS, Recv, Request
from hyperhive.wire.responses import Err, Reply, encode
from hyperhive.wire.roles import SocketKind

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Identity:
    """Who is talking: the operator (host.sock), the manager, or one agent."""

    kind: SocketKind
    name: str


@dataclass
class Connection:
    """Per-connection state: deliveries not yet acked (redelivered if it closes)."""

    identity: Identity
    unacked: set[int] = field(default_factory=set)


Handler = Callable[[Connection, Request], Awaitable[Reply]]
CloseHook = Callable[[Connection], Awaitable[None]]

BACKLOG = 1024
ACCEPT_BATCH = 64
"""Connections taken per wake-up of a listening socket, so one socket cannot hog the loop."""
RETRY_FIRST = 0.01
RETRY_MAX = 1.0
"""Backoff (seconds) of a listener that ran out of descriptors: it stops polling, retries
after RETRY_FIRST, doubling up to RETRY_MAX, instead of spinning on a ready socket."""
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Listener:
    """The accept side of one unix socket: callback driven, bounded per wake-up, backing
    off when the process is out of descriptors. (asyncio's own accept loop, Python 3.11,
    keeps calling accept() after EMFILE, up to the backlog per wake-up, logging a traceback
    each time and scheduling a retry each time: the 208 MB log of issue 13.)"""

    def __init__(self, sock: socket.socket, accepted: Callable[[socket.socket], None]) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._accepted = accepted
        self._loop = asyncio.get_running_loop()
        self._retry: asyncio.TimerHandle | None = None
        self._delay = RETRY_FIRST
        self._closed = False
        self._loop.add_reader(self._fd, self._ready)

    def _ready(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                self._back_off(exc)
                return
            self._delay = RETRY_FIRST
            try:
                conn.setblocking(False)
                self._accepted(conn)
            except Exception:
                logger.exception("cannot take a connection on %s", self._sock.getsockname())
                conn.close()

    def _back_off(self, exc: OSError) -> None:
        if exc.errno in OUT_OF_RESOURCES:
            logger.error(
                "cannot accept connections on %s: %s — waiting up to %.0f s between tries;"
                " raise LimitNOFILE or lower HYPERHIVE_MAX_CONNECTIONS_PER_SOCKET",
                self._sock.getsockname(),
                exc.strerror,
                RETRY_MAX,
            )
        else:
            logger.error("accept on %s failed: %s", self._sock.getsockname(), exc)
        self._loop.remove_reader(self._fd)
        self._retry = self._loop.call_later(self._delay, self._resume)
        self._delay = min(self._delay * 2, RETRY_MAX)

    def _resume(self) -> None:
        self._retry = None
        if not self._closed:
            self._loop.add_reader(self._fd, self._ready)

    def close(self) -> None:
        """Stop accepting and close the listening socket (synchronously: no fd race)."""
        if self._closed:
            return
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
        else:
            self._loop.remove_reader(self._fd)
        self._sock.close()


class SocketServer:
    """Serve one socket: read lines, check the command is allowed here, dispatch."""

    def __init__(
        self,
        path: Path,
        identity: Identity,
        handler: Handler,
        on_close: CloseHook,
        mode: int,
        max_connections: int = 64,
        *,
        root: Path | None = None,
        staging: Path | None = None,
    ) -> None:
        """`root`: a trusted directory `path` lies under (default: its parent), walked
        down without following links; `staging`: a daemon-only directory on the same file
        system where the socket is bound and chmodded before it is renamed into place
        (default: `path`'s parent, right only when no container can write that).
        """
        self.path = path
        self.identity = identity
        self._handler = handler
        self._on_close = on_close
        self._mode = mode
        self._root = root or path.parent
        self._staging = staging or path.parent
        self._own_staging = staging is not None
        self._inode: int | None = None
        self.max_connections = max_connections
        self._server: Listener | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind, set the mode, listen, then rename the socket into place.

        The socket's directory may be writable by the agent (it is its /run/hive): the
        socket is bound and chmodded in the daemon-only staging directory and renamed
        over whatever is at `path` (a stale socket, or a symlink an agent put there: the
        rename replaces the link, never its target). Nothing is chmodded by path where
        an agent can write.
        """
        safefs.ensure_dir(self._root, self.path.parent)
        if self._own_staging:
            safefs.ensure_dir(self._staging.parent, self._staging, mode=0o700)
        name = f".{secrets.token_hex(8)}.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.ExitStack() as stack:
            src = stack.enter_context(safefs.opened_dir(self._staging, self._staging))
            # Bound through the directory's descriptor: short, and no path lookup to race.
            temp = f"/proc/self/fd/{src}/{name}"
            try:
                sock.bind(temp)
                os.chmod(temp, self._mode)  # in the daemon-only staging dir
                self._inode = os.stat(name, dir_fd=src, follow_symlinks=False).st_ino
                sock.listen(BACKLOG)
                sock.setblocking(False)
                self._server = Listener(sock, self._accepted)
                dst = stack.enter_context(safefs.opened_dir(self._root, self.path.parent))
                os.rename(name, self.path.name, src_dir_fd=src, dst_dir_fd=dst)
                placed = os.stat(self.path.name, dir_fd=dst, follow_symlinks=False)
            except BaseException:
                if self._server is not None:
                    self._server.close()
                    self._server = None
                else:
                    sock.close()
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=src)
                raise
        if placed.st_ino != self._inode or stat.S_IMODE(placed.st_mode) != self._mode:
            # The agent replaced its own socket at once: its loss, nothing else changed.
            logger.warning("%s was replaced right after it was created", self.path)

    async def stop(self) -> None:
        """Stop listening, end open connections, remove the socket file if still ours."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        with (
            contextlib.suppress(OSError, safefs.UnsafePath),
            safefs.opened_dir(self._root, self.path.parent) as dst,
        ):
            found = os.stat(self.path.name, dir_fd=dst, follow_symlinks=False)
            if found.st_ino == self._inode and stat.S_ISSOCK(found.st_mode):
                os.unlink(self.path.name, dir_fd=dst)

    def _accepted(self, sock: socket.socket) -> None:
        if len(self._tasks) >= self.max_connections:
            self._refuse(sock)
            return
        task = asyncio.get_running_loop().create_task(self._adopt(sock))
        self._tasks.add(task)  # counted from now on, before it first runs

    def _refuse(self, sock: socket.socket) -> None:
        """One err line (best effort: never blocks) and close: the identity already holds
        its share of the daemon's descriptors."""
        who = self.identity.name
        line = encode(
            Err(
                message=f"too many open connections to {who}'s socket: {self.max_connections}"
                f" are open, the limit (HYPERHIVE_MAX_CONNECTIONS_PER_SOCKET); close idle"
                " connections (one is enough: requests on it are answered in order) and"
                " retry"
            )
        )
        with contextlib.suppress(OSError):
            sock.send(line)
        sock.close()
        logger.warning(
            "refused a connection to %s's socket: %d open (HYPERHIVE_MAX_CONNECTIONS_PER_SOCKET)",
            who,
            self.max_connections,
        )

    async def _adopt(self, sock: socket.socket) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_LINE + 1)
        except BaseException as exc:
            sock.close()
            self._tasks.discard(task)
            if not isinstance(exc, Exception):
                raise  # cancelled by stop()
            logger.error("cannot serve a connection on %s: %s", self.path, exc)
            return
        await self._serve(reader, writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = Connection(self.identity)
        # Set only while a recv is parked: the next line, read ahead so that a client that
        # hangs up then is noticed at once (the recv is cancelled) instead of when the recv
        # would have returned. Other commands are answered inline, with no extra tasks.
        ahead: asyncio.Future[bytes | TooLong | None] | None = None
        try:
            while True:
                if ahead is not None:
                    line, ahead = await ahead, None
                else:
                    line = await read_line(reader)
                if line is None:
                    break
                if line is TOO_LONG:
                    reply: Reply = Err(message=f"request line exceeds {MAX_LINE} bytes")
                else:
                    assert isinstance(line, bytes)
                    request = parse_request(line)
                    if isinstance(request, Recv) and request.wait_seconds > 0:
                        ahead = asyncio.ensure_future(read_line(reader))
                        handler = asyncio.ensure_future(self._answer(conn, request))
                        await asyncio.wait({handler, ahead}, return_when=asyncio.FIRST_COMPLETED)
                        if not handler.done() and ahead.result() is None:
                            handler.cancel()  # the client is gone; nobody reads the answer
                            with contextlib.suppress(asyncio.CancelledError):
                                await handler
                            break
                        reply = await handler
                    else:
                        reply = await self._answer(conn, request)
                writer.write(encode(reply))
                await writer.drain()
        except ConnectionError:
            pass
        except Exception:
            logger.exception("connection on %s failed", self.path)
        finally:
            if ahead is not None and not ahead.done():
                ahead.cancel()
            writer.close()
            try:
                await self._on_close(conn)
            except Exception:
                logger.exception("cleanup of a connection on %s failed", self.path)
            finally:
                self._tasks.discard(task)

    async def _answer(self, conn: Connection, request: Request | str) -> Reply:
        if isinstance(request, str):
            return Err(message=request)
        if request.cmd not in COMMANDS[self.identity.kind]:
            where = "host.sock and the dashboard" if self.identity.kind != "host" else "agents"
            return Err(
                message=f"cmd {request.cmd!r} is not available on the {self.identity.kind}"
                f" socket (it belongs to {where})"
            )
        try:
            return await self._handler(conn, request)
        except HyperhiveError as exc:
            return Err(message=exc.message)
        except Exception as exc:
            logger.exception("cmd %s on %s failed", request.cmd, self.path)
            return Err(message=f"internal error handling {request.cmd!r}: {type(exc).__name__}")

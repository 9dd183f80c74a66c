"""Bind an aiohttp app to a TCP port the way every hyperhive HTTP server does (SPEC §3).

`SO_REUSEADDR` (never `SO_REUSEPORT`, which would let two daemons share the port and split
its traffic) and a retry loop on `EADDRINUSE`: during a restart the old process may still
hold the port for a moment, so the new one waits up to ~22 s for it instead of failing.

Architecture Invariant: this module imports nothing from the daemon's packages; the
per-agent web UI (inside a container) uses it too.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

logger = logging.getLogger(__name__)

BIND_RETRIES = 12
FIRST_DELAY = 0.5
MAX_DELAY = 2.0


def retry_delays(
    retries: int = BIND_RETRIES, first: float = FIRST_DELAY, cap: float = MAX_DELAY
) -> list[float]:
    """The waits between bind attempts: doubling from `first`, capped at `cap` (~22 s)."""
    return [min(cap, first * 2**n) for n in range(retries)]


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port) with SO_REUSEADDR set; raises OSError."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        # REUSEADDR lets us bind while the old process's connections sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def bind_with_retry(
    host: str,
    port: int,
    *,
    delays: list[float] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> socket.socket:
    """`bind_socket`, retrying EADDRINUSE after each of `delays`; other errors raise at once."""
    waits = retry_delays() if delays is None else delays
    for attempt in range(len(waits) + 1):
        try:
            return bind_socket(host, port)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or attempt == len(waits):
                if exc.errno == errno.EADDRINUSE:
                    raise OSError(
                        exc.errno,
                        f"{host}:{port} is still in use after {attempt + 1} attempts"
                        f" (~{sum(waits):.0f} s); stop whatever listens there"
                        " (ss -ltnp) or choose another port",
                    ) from exc
                raise
            logger.warning(
                "%s:%d is in use; retrying in %.2f s (%d/%d)",
                host,
                port,
                waits[attempt],
                attempt + 1,
                len(waits),
            )
            await sleep(waits[attempt])
    raise AssertionError("unreachable")  # the loop returns or raises


@dataclass
class BoundApp:
    """A running aiohttp app on a bound socket."""

    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:7000."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Run the app's shutdown and cleanup hooks and close the socket."""
        await self.runner.cleanup()


async def serve_app(
    app: web.Application,
    host: str,
    port: int,
    *,
    delays: list[float] | None = None,
    shutdown_timeout: float = 5.0,
) -> BoundApp:
    """Start `app` on (host, port) with the bind retry loop; port 0 picks a free port."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        sock = await bind_with_retry(host, port, delays=delays)
    except BaseException:  # cancelled while waiting for the port, or it never came free
        await runner.cleanup()
        raise
    bound_port = int(sock.getsockname()[1])
    try:
        await web.SockSite(runner, sock).start()
    except BaseException:
        sock.close()
        await runner.cleanup()
        raise
    logger.info("listening on %s:%d", host, bound_port)
    return BoundApp(runner, host, bound_port)

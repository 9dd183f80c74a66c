"""hyperhive.http: SO_REUSEADDR, never SO_REUSEPORT, and the EADDRINUSE retry loop."""

from __future__ import annotations

import asyncio
import errno
import socket

import aiohttp
import pytest
from aiohttp import web
from hyperhive.http import bind_socket, bind_with_retry, retry_delays, serve_app


def occupy() -> socket.socket:
    """A plain listener on a free loopback port."""
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    return blocker


def test_delays_double_up_to_two_seconds_for_about_22_seconds() -> None:
    delays = retry_delays()
    assert len(delays) == 12
    assert max(delays) == 2.0
    assert delays == sorted(delays)
    assert 20 <= sum(delays) <= 24


def test_socket_sets_reuseaddr_and_never_reuseport() -> None:
    sock = bind_socket("127.0.0.1", 0)
    try:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
    finally:
        sock.close()


async def test_bind_waits_for_the_port_to_be_freed() -> None:
    blocker = occupy()
    port = blocker.getsockname()[1]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            blocker.close()  # the old process finally lets go

    sock = await bind_with_retry("127.0.0.1", port, delays=[0.01] * 12, sleep=sleep)
    try:
        assert sock.getsockname()[1] == port
        assert waits == [0.01, 0.01]
    finally:
        sock.close()


async def test_bind_gives_up_after_every_retry_with_a_clear_message() -> None:
    blocker = occupy()
    port = blocker.getsockname()[1]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    try:
        with pytest.raises(OSError, match="still in use after 13 attempts") as info:
            await bind_with_retry("127.0.0.1", port, sleep=sleep)
    finally:
        blocker.close()
    assert info.value.errno == errno.EADDRINUSE
    assert waits == retry_delays()


async def test_serve_app_answers_on_the_bound_port() -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/", hello)
    bound = await serve_app(app, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as s, s.get(bound.url + "/") as r:
            assert await r.text() == "hi"
    finally:
        await bound.stop()


async def test_cancelling_while_waiting_for_the_port_ends_the_retry_loop() -> None:
    blocker = occupy()
    port = blocker.getsockname()[1]
    waiting = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waiting.set()
        await asyncio.Event().wait()  # parked until cancelled

    task = asyncio.create_task(bind_with_retry("127.0.0.1", port, sleep=sleep))
    await waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    blocker.close()

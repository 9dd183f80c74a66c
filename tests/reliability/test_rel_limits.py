"""One agent cannot starve the hive of file descriptors (issue 13, "Limits per identity").

A real `hive-c0re serve` process, its RLIMIT_NOFILE lowered to 256 after start (root sets
another process' limit with prlimit), so that a few hundred idle connections are what
~1,100 are against systemd's default of 1,024.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import resource
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import aiohttp
import pytest
from hivetest import Client, DaemonProcess, call
from hyperhive.logrepeat import RepeatFilter

FD_LIMIT = 256
FLOOD = 300
"""More idle connections than the daemon has file descriptors."""
ANSWER_WITHIN = 1.0
"""Seconds in which the operator, the dashboard and other agents must still be answered."""


def dashboard_url(daemon: DaemonProcess) -> str:
    found = re.search(r"dashboard (http://\S+)", daemon.log.read_text())
    assert found, "the ready line names no dashboard"
    return found.group(1)


@pytest.fixture
def small_daemon(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DaemonProcess]:
    """A daemon with alice and bob, limited to FD_LIMIT descriptors."""
    extra: dict[str, str] = getattr(request, "param", {})
    proc = DaemonProcess(tmp_path, HYPERHIVE_HARNESS="false", **extra)
    proc.start()
    try:
        for name in ("alice", "bob"):
            done = proc.cli("spawn", name)
            assert done.returncode == 0, done.stderr
        assert proc.proc is not None
        resource.prlimit(proc.proc.pid, resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
        yield proc
    finally:
        proc.stop()


@contextmanager
def idle_connections(path: Path, count: int) -> Iterator[list[socket.socket]]:
    """`count` connections to `path` that send nothing; all closed on exit."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(str(path))  # lands in the backlog even when accept() fails
            socks.append(s)
        yield socks
    finally:
        for s in socks:
            s.close()


async def everyone_else_answers(daemon: DaemonProcess) -> None:
    """The operator's CLI socket, another agent and the dashboard answer within a second."""
    host = await asyncio.wait_for(call(daemon.host_socket, "list"), ANSWER_WITHIN)
    assert host["kind"] == "agents"
    bob = await asyncio.wait_for(call(daemon.socket_of("bob"), "whoami"), ANSWER_WITHIN)
    assert bob["name"] == "bob"
    login = await asyncio.wait_for(call(daemon.host_socket, "login"), ANSWER_WITHIN)
    auth = {"Authorization": "Bearer " + login["url"].split("#key=", 1)[1]}
    timeout = aiohttp.ClientTimeout(total=ANSWER_WITHIN)
    async with (
        aiohttp.ClientSession(timeout=timeout, headers=auth) as s,
        s.get(dashboard_url(daemon) + "/api/state") as r,
    ):
        assert r.status == 200
        assert "agents" in await r.json()


def first_line(s: socket.socket) -> bytes:
    s.settimeout(10)
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


async def test_idle_connection_flood_on_one_agent_socket_starves_nobody(
    small_daemon: DaemonProcess,
) -> None:
    alice = small_daemon.socket_of("alice")
    keeper = await Client.open(alice)  # an existing connection keeps working
    try:
        with idle_connections(alice, FLOOD) as socks:
            # the connections over the limit were told why and closed by the daemon
            refused = first_line(socks[-1])
            reply = json.loads(refused)
            assert reply["kind"] == "err"
            assert "HYPERHIVE_MAX_CONNECTIONS_PER_SOCKET" in reply["message"]
            assert "alice" in reply["message"]
            assert first_line(socks[-1]) == b""  # and then closed
            await everyone_else_answers(small_daemon)
            assert (await keeper.call("whoami"))["name"] == "alice"
    finally:
        await keeper.close()
    # ~236 refusals, one log line: identical warnings are counted, not repeated
    refusals = small_daemon.log.read_text().count("refused a connection to alice's socket")
    assert refusals == 1


@pytest.mark.parametrize(
    "small_daemon", [{"HYPERHIVE_MAX_CONNECTIONS_PER_SOCKET": "100000"}], indirect=True
)
async def test_out_of_descriptors_is_logged_once_with_a_count_and_recovers(
    small_daemon: DaemonProcess,
) -> None:
    """With the per-socket limit lifted the daemon does run out of descriptors: its log
    must not flood, and once the flood ends everyone is served again."""
    log = small_daemon.log
    before = log.stat().st_size
    with idle_connections(small_daemon.socket_of("alice"), FLOOD):
        deadline = time.monotonic() + 20
        while "Too many open files" not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline, "the daemon never ran out of descriptors"
            await asyncio.sleep(0.05)
        # the host socket cannot be served now: try it for a while (the flood is on)
        with suppress(TimeoutError, OSError, AssertionError):
            await asyncio.wait_for(call(small_daemon.host_socket, "list"), 3)
    # flood over: the descriptors come back and so does service
    deadline = time.monotonic() + 10
    while True:
        try:
            await everyone_else_answers(small_daemon)
            break
        except (TimeoutError, OSError, AssertionError, aiohttp.ClientError):
            assert time.monotonic() < deadline, "the daemon did not recover after the flood"
            await asyncio.sleep(0.1)
    grown = log.stat().st_size - before
    assert grown < 64 * 1024, f"the daemon logged {grown} bytes during a 3-second flood"


def test_the_daemon_raises_its_soft_open_files_limit_to_the_hard_one(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(512, soft)
    assert low < hard, "the test needs a hard limit above 512 to see it raised"
    proc = DaemonProcess(tmp_path, HYPERHIVE_HARNESS="false")
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))  # inherited by the daemon
    try:
        proc.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        assert proc.proc is not None
        assert resource.prlimit(proc.proc.pid, resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        proc.stop()


SWALLOWED = "identical message(s) in the 60 s before, not written"


def test_identical_errors_are_written_once_then_counted() -> None:
    now = [0.0]
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    log = logging.getLogger("hyperhive.test.repeats")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    handler = Collect()
    handler.addFilter(RepeatFilter(window=60.0, clock=lambda: now[0]))
    log.addHandler(handler)
    try:
        for _ in range(1000):
            log.error("accept failed on %s", "alice")
        log.error("accept failed on %s", "bob")  # another message passes
        log.info("not an error")
        log.info("not an error")  # below WARNING: never counted
        now[0] = 61.0
        log.error("accept failed on %s", "alice")
    finally:
        log.removeHandler(handler)
    assert records == [
        "accept failed on alice",
        "accept failed on bob",
        "not an error",
        "not an error",
        f"accept failed on alice (and 999 {SWALLOWED})",
    ]

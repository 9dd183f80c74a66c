"""kill -9 an agent's harness mid-turn, twice, with the real claude CLI (SPEC §5, §7).

Real processes: `hive-c0re serve`, `hive-ag3nt serve` in its own process group (killing the
group is what a container stop does to claude and its MCP server), the pinned claude CLI
against the Anthropic API stand-in (tests/standin, the only stand-in: the model).

The first turn calls a tool (a send to the operator) and then hangs; the harness is killed
while claude is still streaming. The second turn is killed as well. What must hold: the
daemon hands the message back the moment the harness's connection drops (before any
restart), the tool's side effect happened once, the harness's own events database is
intact after each kill -9, and the third run handles the message, acks it once, and is told
it is a redelivery.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from harness.support import HarnessProcess
from hivetest import DaemonProcess, call, drain
from rel_support import query
from standin.api import Hang, StandIn, Text, ToolCall, last_user_text


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path / "hive", HYPERHIVE_HARNESS="false")
    proc.start()
    yield proc
    proc.stop()


async def until(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {within} s")
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_harness_killed_mid_turn_twice_loses_nothing_and_repeats_nothing(
    daemon: DaemonProcess, standin: StandIn, claude_bin: Path
) -> None:
    assert daemon.cli("spawn", "dora").returncode == 0
    sock = daemon.socket_of("dora")
    assert await drain(sock), "no boot kick"  # out of the way, acked on one connection
    harness = HarnessProcess(daemon, "dora", standin, claude_bin)
    first, second = Hang(), Hang()
    standin.script(
        harness.key,
        ToolCall("mcp__hyperhive__send", {"to": "operator", "body": "step one done"}),
        first,
        second,
        Text("all done"),
    )
    db = daemon.root / "state" / "broker.sqlite"
    sent = await call(daemon.host_socket, "send", to="dora", body="do the long job")
    message_id = sent["ids"][0]

    async def handed_back() -> bool:
        unread: int = (await call(sock, "status"))["unread"]
        return unread == 1

    try:
        for hang in (first, second):
            harness.start()
            assert await asyncio.to_thread(hang.started.wait, 90), "claude never reached the hang"
            assert (await call(sock, "status"))["unread"] == 0, "the message was not popped"
            harness.kill9()  # mid-turn: claude is streaming, nothing acked
            await until(handed_back, 10, "the daemon handing the message back")
            assert query(harness.events_db, "PRAGMA integrity_check") == [("ok",)]
            assert "turn_start" in harness.event_kinds()

        harness.start()

        async def acked() -> bool:
            rows = query(db, "SELECT acked_at FROM messages WHERE id = ?", message_id)
            return bool(rows[0][0] is not None)

        await until(acked, 90, "the message handled and acked after two kills")
    finally:
        harness.stop()

    (deliveries,) = query(db, "SELECT deliveries FROM messages WHERE id = ?", message_id)[0]
    assert deliveries == 3, f"delivered {deliveries} times for 3 runs"
    side_effects = query(
        db, "SELECT count(*) FROM messages WHERE sender = 'dora' AND body = 'step one done'"
    )
    assert side_effects == [(1,)], "the tool call before the first kill was repeated or lost"
    prompts = [last_user_text(r.body) for r in standin.received(harness.key)]
    assert "do the long job" in prompts[-1]
    assert "redelivered" in prompts[-1]
    assert standin.pending(harness.key) == 0
    kinds = harness.event_kinds()
    assert kinds.count("turn_start") == 3, kinds
    assert kinds.count("turn_end") >= 1, kinds

"""End to end with real processes: `hive-c0re serve`, `hive-ag3nt serve` per agent, the real
claude CLI per turn (against the API stand-in) and our MCP server started by claude."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hivetest import DaemonProcess, call
from standin.api import Hang, StandIn, Text, ToolCall, last_user_text

from harness.support import HarnessProcess, spawn_quiet


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path_factory.mktemp("e2e"))
    proc.start()
    yield proc
    proc.stop()


async def until(check: Any, within: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await check() if asyncio.iscoroutinefunction(check) else check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {within} s")
        await asyncio.sleep(0.05)


async def rows_of(daemon: DaemonProcess, name: str) -> list[dict[str, Any]]:
    reply = await call(daemon.socket_of(name), "recent", limit=100)
    rows: list[dict[str, Any]] = reply["rows"]
    return rows


async def test_operator_to_alice_to_bob_and_back(
    daemon: DaemonProcess, standin: StandIn, claude_bin: Path
) -> None:
    for name in ("alice", "bob"):
        await spawn_quiet(daemon.host_socket, daemon.socket_of(name), name)
    alice = HarnessProcess(daemon, "alice", standin)
    bob = HarnessProcess(daemon, "bob", standin)
    standin.script(
        alice.key,
        ToolCall("mcp__hyperhive__send", {"to": "bob", "body": "bob, please say pong"}),
        Text("asked bob"),
        Text("bob answered, all done"),
    )
    standin.script(
        bob.key,
        ToolCall("mcp__hyperhive__send", {"to": "alice", "body": "pong"}),
        Text("replied to alice"),
    )
    alice.start(claude_bin)
    bob.start(claude_bin)
    try:
        sent = await call(daemon.host_socket, "send", to="alice", body="ask bob for a pong")
        assert sent["kind"] == "ok", sent

        async def all_acked() -> bool:
            rows = await rows_of(daemon, "alice")
            wanted = {("operator", "alice"), ("alice", "bob"), ("bob", "alice")}
            seen = {(r["from"], r["to"]) for r in rows if r["acked"]}
            return wanted <= seen

        await until(all_acked, 90, "all three messages acked")
        rows = await rows_of(daemon, "alice")
        reply = [r for r in rows if r["from"] == "bob" and r["to"] == "alice"]
        assert [r["body"] for r in reply] == ["pong"]
        await until(lambda: len(alice.turn_ends()) == 2, 30, "alice's two turns stored")
        await until(lambda: len(bob.turn_ends()) == 1, 30, "bob's turn stored")
        assert all(t["ok"] for t in alice.turn_ends() + bob.turn_ends())
        assert standin.pending(alice.key) == 0
        assert standin.pending(bob.key) == 0
        bob_turn = standin.received(bob.key)[0]
        assert "bob, please say pong" in last_user_text(bob_turn.body)
        assert alice.stop() == 0  # SIGTERM is a clean shutdown
    finally:
        alice.stop()
        bob.stop()


async def test_agent_restarted_mid_turn_gets_its_message_again(
    daemon: DaemonProcess, standin: StandIn, claude_bin: Path
) -> None:
    await spawn_quiet(daemon.host_socket, daemon.socket_of("carol"), "carol")
    carol = HarnessProcess(daemon, "carol", standin)
    hang = Hang()
    standin.script(carol.key, hang)
    carol.start(claude_bin)
    try:
        sent = await call(daemon.host_socket, "send", to="carol", body="long job")
        mid = sent["ids"][0]
        assert await asyncio.to_thread(hang.started.wait, 60)
        carol.kill9()  # mid-turn: claude is streaming, nothing acked

        async def redelivered_and_acked() -> bool:
            rows = await rows_of(daemon, "carol")
            return any(r["id"] == mid and r["acked"] for r in rows)

        row = next(r for r in await rows_of(daemon, "carol") if r["id"] == mid)
        assert row["acked"] is False
        standin.script(carol.key, Text("finished after the restart"))
        carol.start(claude_bin)
        await until(redelivered_and_acked, 60, "the message redelivered and acked")
        prompts = [last_user_text(r.body) for r in standin.received(carol.key)]
        assert "long job" in prompts[-1]
        assert "redelivered" in prompts[-1]
    finally:
        carol.stop()

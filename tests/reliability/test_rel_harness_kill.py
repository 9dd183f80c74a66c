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
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from hivetest import DaemonProcess, call, drain
from rel_support import query
from standin.api import Hang, StandIn, Text, ToolCall, claude_env, last_user_text

HIVE_AG3NT = Path(sys.executable).with_name("hive-ag3nt")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path / "hive", HYPERHIVE_HARNESS="false")
    proc.start()
    yield proc
    proc.stop()


class Harness:
    """One `hive-ag3nt serve` for agent `name`, as the local backend would run it."""

    def __init__(self, daemon: DaemonProcess, name: str, standin: StandIn, claude: Path) -> None:
        if not HIVE_AG3NT.is_file():
            pytest.fail(f"{HIVE_AG3NT} is missing: install the project (pip install -e .)")
        self.root = daemon.root.parent / f"agent-{name}"
        self.key = f"sk-test-{name}-{uuid.uuid4().hex[:12]}"
        self.env = {
            **claude_env(standin, self.root / "home", self.key),
            "HYPERHIVE_AGENT_NAME": name,
            "HYPERHIVE_SOCKET": str(daemon.socket_of(name)),
            "HYPERHIVE_HIVE_DIR": str(self.root / "hive"),
            "HYPERHIVE_STATE_DIR": str(self.root / "state"),
            "HYPERHIVE_CLAUDE_BIN": str(claude),
        }
        if "PYTHONPATH" in os.environ:  # run the same hyperhive as this test
            self.env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def events_db(self) -> Path:
        return self.root / "state" / "hyperhive-events.sqlite"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "harness.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [str(HIVE_AG3NT), "serve"],
                env=self.env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill9()

    def event_kinds(self) -> list[str]:
        conn = sqlite3.connect(f"file:{self.events_db}?mode=ro", uri=True)
        try:
            return [kind for (kind,) in conn.execute("SELECT kind FROM events ORDER BY id")]
        finally:
            conn.close()


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
    harness = Harness(daemon, "dora", standin, claude_bin)
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

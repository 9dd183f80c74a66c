"""The turn loop: the real claude CLI against the API stand-in, a real in-process daemon."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hivetest import call, running_hive
from hyperhive.harness.events import Event
from standin.api import ApiError, Hang, Kind, StandIn, Text, ToolCall, last_user_text

from harness.support import Running, eventually, harness_settings, running_harness, spawn_quiet


@dataclass
class Agent:
    host: Path
    socket: Path
    run: Running

    async def send(self, body: str) -> int:
        reply = await call(self.host, "send", to="alice", body=body)
        assert reply["kind"] == "ok", reply
        return int(reply["ids"][0])

    async def row(self, message_id: int) -> dict[str, Any]:
        recent = await call(self.socket, "recent", limit=50)
        (row,) = [r for r in recent["rows"] if r["id"] == message_id]
        return row  # type: ignore[no-any-return]

    async def acked(self, message_id: int) -> bool:
        """Wait until the harness acked ``message_id`` (it acks right after turn_end)."""
        for _ in range(500):
            if (await self.row(message_id))["acked"]:
                return True
            await asyncio.sleep(0.02)
        return False

    async def turn_end(self, message_id: int, within: float = 60) -> Event:
        return await self.run.wait_event(
            "turn_end", lambda e: e.payload["message_id"] == message_id, within
        )

    async def state(self, status: str, within: float = 60) -> Event:
        return await self.run.wait_event("state", lambda e: e.payload["status"] == status, within)


def stored_kinds(agent: Agent) -> list[str]:
    store = agent.run.harness.store
    assert store is not None
    return [e.kind for e in store.list_events()]


@asynccontextmanager
async def alice(
    tmp_path: Path, claude_bin: Path, standin: StandIn, **overrides: Any
) -> AsyncIterator[Agent]:
    async with running_hive(tmp_path / "h") as hive:
        host = hive.settings.host_socket
        sock = hive.settings.run_dir / "agents" / "alice" / "mcp.sock"
        await spawn_quiet(host, sock, "alice")
        settings = harness_settings(tmp_path / "alice", "alice", sock, claude_bin)
        settings = settings.model_copy(update=overrides)
        async with running_harness(
            tmp_path / "alice", "alice", sock, claude_bin, standin, settings
        ) as run:
            yield Agent(host, sock, run)


async def test_message_runs_a_turn_that_calls_the_broker_and_is_acked(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    async with alice(tmp_path, claude_bin, standin) as a:
        standin.script(
            a.run.key,
            ToolCall("mcp__hyperhive__send", {"to": "operator", "body": "hi operator"}),
            Text("done"),
        )
        mid = await a.send("say hi to the operator")
        end = await a.turn_end(mid)
        assert end.payload["ok"] is True, end.payload
        assert await a.acked(mid)
        recent = await call(a.socket, "recent", limit=10)
        assert any(
            r["from"] == "alice" and r["to"] == "operator" and r["body"] == "hi operator"
            for r in recent["rows"]
        )
        (first, _) = standin.received(a.run.key)
        assert f"New message #{mid} from operator" in last_user_text(first.body)
        await eventually(lambda: "turn_end" in stored_kinds(a))
        assert {"turn_start", "stream", "turn_end", "state"} <= set(stored_kinds(a))


async def test_rate_limit_requeues_and_retries_after_the_sleep(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    async with alice(tmp_path, claude_bin, standin, rate_limit_sleep=1.0) as a:
        standin.script(a.run.key, ApiError.rate_limited(), Text("second try worked"))
        mid = await a.send("work")
        limited = await a.state("rate_limited")
        assert (await a.row(mid))["acked"] is False
        online = await a.state("online")
        end = await a.turn_end(mid)
        assert end.payload["ok"] is True
        assert online.ts - limited.ts >= 0.9  # slept, not retried at once
        assert len(standin.received(a.run.key)) == 2
        assert await a.acked(mid)


async def test_auth_failure_parks_in_needs_login_and_keeps_the_message(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    async with alice(tmp_path, claude_bin, standin) as a:
        standin.script(a.run.key, ApiError.unauthorized(), Text("logged in now"))
        mid = await a.send("work")
        failed = await a.turn_end(mid)
        assert failed.payload["outcome"] == "needs_login"
        await a.state("needs_login")
        row = await a.row(mid)
        assert (row["delivered"], row["acked"]) == (True, False)
        assert len(standin.received(a.run.key)) == 1  # parked: no retry without a login
        # What `claude auth login` leaves behind; the harness notices and retries.
        creds = Path(a.run.harness.loop.env["CLAUDE_CONFIG_DIR"]) / ".credentials.json"
        creds.write_text("{}")
        await a.state("online")
        end = await a.turn_end(mid)
        assert end.payload["ok"] is True
        assert await a.acked(mid)


async def test_boot_without_credentials_takes_no_message_until_login(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    async with running_hive(tmp_path / "h") as hive:
        host = hive.settings.host_socket
        sock = hive.settings.run_dir / "agents" / "alice" / "mcp.sock"
        await spawn_quiet(host, sock, "alice")
        # Waiting before the harness starts: a loop that recv'd before checking the login
        # would have popped it by the time it reports needs_login.
        sent = await call(host, "send", to="alice", body="work")
        mid = sent["ids"][0]
        async with running_harness(
            tmp_path / "alice", "alice", sock, claude_bin, standin, logged_in=False
        ) as run:
            a = Agent(host, sock, run)
            await a.state("needs_login")
            assert (await a.row(mid))["delivered"] is False
            creds = Path(run.harness.loop.env["CLAUDE_CONFIG_DIR"]) / ".credentials.json"
            creds.parent.mkdir(parents=True, exist_ok=True)
            creds.write_text("{}")
            await a.state("online")
            start = await run.wait_event("turn_start")
            assert start.payload["message_id"] == mid


async def test_cancel_stops_a_running_turn_and_the_next_message_is_taken(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    async with alice(tmp_path, claude_bin, standin) as a:
        hang = Hang()
        standin.script(a.run.key, hang, Text("second message handled"))
        first = await a.send("a long job")
        assert await asyncio.to_thread(hang.started.wait, 60)
        assert a.run.harness.loop.cancel() is True
        end = await a.turn_end(first)
        assert end.payload["outcome"] == "cancelled"
        second = await a.send("a short job")
        end = await a.turn_end(second)
        assert end.payload["ok"] is True
        assert await a.acked(second)
        assert a.run.harness.loop.cancel() is False  # nothing running any more


async def test_prompt_too_long_triggers_one_compaction_then_the_turn_runs(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    async with alice(tmp_path, claude_bin, standin) as a:
        standin.script(a.run.key, Text("first answer"))
        first = await a.send("one")
        assert (await a.turn_end(first)).payload["ok"] is True
        standin.script(a.run.key, ApiError.prompt_too_long(), Text("after compaction"))
        mid = await a.send("two")
        compacted = await a.run.wait_event("compacted")
        assert compacted.payload["ok"] is True
        end = await a.turn_end(mid)
        assert end.payload["ok"] is True, end.payload
        assert len(standin.received(a.run.key, Kind.COMPACT)) == 1
        assert await a.acked(mid)


async def test_prompt_too_long_twice_compacts_only_once_then_fails_for_good(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    async with alice(tmp_path, claude_bin, standin) as a:
        standin.script(a.run.key, Text("first answer"))
        first = await a.send("one")
        assert (await a.turn_end(first)).payload["ok"] is True
        standin.script(a.run.key, ApiError.prompt_too_long(), ApiError.prompt_too_long())
        mid = await a.send("two")
        failed = await a.run.wait_event("turn_failed", within=90)
        assert failed.payload["message_id"] == mid
        assert len(standin.received(a.run.key, Kind.COMPACT)) == 1
        # Acked and reported: a message no compaction can fit must not block the inbox.
        assert await a.acked(mid)


async def test_unparseable_stream_lines_become_notes(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    wrapper = tmp_path / "claude-noisy"
    wrapper.write_text(
        "#!/bin/sh\n"
        "echo 'this is not json {'\n"
        "echo 'a warning on stderr' >&2\n"
        f'exec {claude_bin} "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    async with alice(tmp_path, wrapper, standin) as a:
        standin.script(a.run.key, Text("fine anyway"))
        mid = await a.send("hi")
        end = await a.turn_end(mid)
        assert end.payload["ok"] is True
        store = a.run.harness.store
        assert store is not None

        def notes() -> set[tuple[str, str]]:
            return {
                (e.payload["source"], e.payload["text"])
                for e in store.list_events()
                if e.kind == "note"
            }

        # stdout and stderr are read by separate tasks: their notes may come in any order.
        await eventually(lambda: ("stdout", "this is not json {") in notes())
        assert ("stderr", "a warning on stderr") in notes()


async def test_unwritable_events_db_leaves_the_harness_running(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the events db's directory should be")
    async with alice(tmp_path, claude_bin, standin, events_db=blocker / "events.sqlite") as a:
        assert a.run.harness.store is None
        standin.script(a.run.key, Text("still working"))
        mid = await a.send("hi")
        end = await a.turn_end(mid)
        assert end.payload["ok"] is True
        assert await a.acked(mid)
    assert blocker.is_file()


async def test_model_file_and_new_session_apply_to_the_next_turn(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    async with alice(tmp_path, claude_bin, standin) as a:
        standin.script(a.run.key, Text("one"), Text("two"))
        first = await a.send("one")
        await a.turn_end(first)
        a.run.harness.settings.model_path.write_text("sonnet\n")
        a.run.harness.loop.new_session()
        second = await a.send("two")
        await a.turn_end(second)
        models = [r.body["model"] for r in standin.received(a.run.key)]
        await eventually(lambda: stored_kinds(a).count("turn_start") == 2)
        store = a.run.harness.store
        assert store is not None
        resumes = [e.payload["resume"] for e in store.list_events() if e.kind == "turn_start"]
    assert "haiku" in models[0]
    assert "sonnet" in models[1]
    assert resumes == [True, False]

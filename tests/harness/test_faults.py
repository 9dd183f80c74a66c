"""Faults of a turn, with the real claude CLI against the API stand-in (issue 18).

Each test asserts exactly one successful turn per message (or one turn_failed), the ack, and
the events the operator sees. Every one of them fails on the engine that classified all
transient failures as "failed" (not acked, never retried), waited for claude's exit rather
than its result, and read the result text before ``is_error``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from pathlib import Path
from typing import Any

from hivetest import call
from hyperhive.harness.events import Event
from hyperhive.harness.loop import backoff_seconds, is_turn_failed_notice
from standin.api import ApiError, Drop, Hang, Kind, StandIn, Text, ToolCall, tool_results

from harness.support import eventually
from harness.test_loop import Agent, alice


def events_of(a: Agent) -> list[Event]:
    store = a.run.harness.store
    assert store is not None
    return store.list_events()


def ends(a: Agent, mid: int) -> list[dict[str, object]]:
    return [
        e.payload for e in events_of(a) if e.kind == "turn_end" and e.payload["message_id"] == mid
    ]


async def ok_end(a: Agent, mid: int, within: float = 60) -> Event:
    """The successful turn_end of ``mid`` (failed attempts before it are skipped)."""
    return await a.run.wait_event(
        "turn_end", lambda e: e.payload["message_id"] == mid and e.payload["ok"], within
    )


async def exactly_one_ok_turn(a: Agent, mid: int) -> None:
    await eventually(lambda: any(p["ok"] for p in ends(a, mid)))
    assert [p["ok"] for p in ends(a, mid)].count(True) == 1, ends(a, mid)
    assert await a.acked(mid)


async def test_overloaded_529_is_retried_and_the_message_acked(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    async with alice(tmp_path, claude_bin, standin) as a:
        standin.script(a.run.key, ApiError.overloaded(), Text("worked the second time"))
        mid = await a.send("work")
        first = await a.turn_end(mid)
        assert (first.payload["ok"], first.payload["outcome"]) == (False, "transient")
        assert first.payload["retry_in"] > 0
        await ok_end(a, mid)
        await exactly_one_ok_turn(a, mid)
        assert len(standin.received(a.run.key)) == 2
        assert "turn_failed" not in [e.kind for e in events_of(a)]


async def test_server_error_500_is_retried(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    async with alice(tmp_path, claude_bin, standin) as a:
        standin.script(a.run.key, ApiError.server_error(), Text("fine now"))
        mid = await a.send("work")
        await ok_end(a, mid)
        await exactly_one_ok_turn(a, mid)
        assert [p["outcome"] for p in ends(a, mid)] == ["transient", "ok"]


async def test_dropped_connection_is_retried(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    async with alice(tmp_path, claude_bin, standin) as a:
        # claude retries a drop itself (and falls back to a non-streaming request); with no
        # retries left it gives up, as in a long outage, and the harness must take over.
        a.run.harness.loop.env["CLAUDE_CODE_MAX_RETRIES"] = "0"
        standin.script(a.run.key, Drop(), Drop(), Text("reconnected"))
        mid = await a.send("work")
        await ok_end(a, mid)
        await exactly_one_ok_turn(a, mid)
        assert [p["outcome"] for p in ends(a, mid)] == ["transient", "ok"]


async def test_claude_killed_mid_turn_is_retried(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    async with alice(tmp_path, claude_bin, standin) as a:
        hang = Hang()
        standin.script(a.run.key, hang, Text("second run"))
        mid = await a.send("work")
        start = await a.run.wait_event("turn_start", lambda e: e.payload["message_id"] == mid)
        assert await asyncio.to_thread(hang.started.wait, 60)
        os.kill(start.payload["pid"], signal.SIGKILL)  # the OOM killer, say
        await ok_end(a, mid)
        await exactly_one_ok_turn(a, mid)
        assert [p["outcome"] for p in ends(a, mid)] == ["transient", "ok"]


def processes_with(token: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if token.encode() in cmdline:
            found.append(int(entry.name))
    return found


async def test_background_bash_does_not_hold_the_turn_open(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    token = f"hivebg{uuid.uuid4().hex[:10]}"
    server = f"while true; do sleep 1; done # {token}"
    async with alice(tmp_path, claude_bin, standin) as a:
        standin.script(
            a.run.key,
            ToolCall("Bash", {"command": server, "run_in_background": True, "description": "dev"}),
            Text("dev server started"),
            Text("second message handled"),
        )
        first = await a.send("start the dev server")
        await eventually(lambda: processes_with(token))  # it really runs
        end = await a.turn_end(first, within=30)  # claude would wait for it forever
        assert end.payload["ok"] is True, end.payload
        assert await a.acked(first)
        await eventually(  # the store lags the bus
            lambda: any(
                e.kind == "note" and "after its result" in e.payload["text"] for e in events_of(a)
            )
        )
        await eventually(lambda: not processes_with(token))  # the process group was ended
        second = await a.send("next")
        assert (await a.turn_end(second)).payload["ok"] is True
        await exactly_one_ok_turn(a, first)


async def test_successful_reply_starting_prompt_is_too_long_is_not_compacted(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    async with alice(tmp_path, claude_bin, standin) as a:
        standin.script(a.run.key, Text("first answer"))
        first = await a.send("one")
        await ok_end(a, first)
        standin.script(a.run.key, Text("Prompt is too long, the user said; I shortened it."))
        mid = await a.send("two")
        end = await a.turn_end(mid)
        assert (end.payload["ok"], end.payload["outcome"]) == (True, "ok")
        await exactly_one_ok_turn(a, mid)
        assert standin.received(a.run.key, Kind.COMPACT) == []
        assert len(standin.received(a.run.key)) == 2  # one per message: nothing re-run


async def test_rate_limit_waits_for_the_retry_after_not_the_fixed_sleep(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    # The fixed sleep is far longer than the test's deadline: only the hint can finish it.
    async with alice(tmp_path, claude_bin, standin, rate_limit_sleep=600.0) as a:
        # claude retries once, honouring retry-after (and reporting the delay), then gives up.
        a.run.harness.loop.env["CLAUDE_CODE_MAX_RETRIES"] = "1"
        standin.script(
            a.run.key,
            ApiError.rate_limited(retry_after=2),
            ApiError.rate_limited(retry_after=2),
            Text("after the reset"),
        )
        mid = await a.send("work")
        limited = await a.turn_end(mid)
        assert limited.payload["outcome"] == "rate_limited"
        assert 1.0 <= limited.payload["retry_in"] <= 10.0, limited.payload
        await a.state("rate_limited")
        assert (await a.row(mid))["acked"] is False
        await ok_end(a, mid, within=30)
        await exactly_one_ok_turn(a, mid)
        assert len(standin.received(a.run.key)) == 3


async def test_permanent_400_is_acked_and_the_sender_gets_turn_failed(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    async with alice(tmp_path, claude_bin, standin) as a:
        standin.script(a.run.key, ApiError.bad_request())
        mid = await a.send("work")
        end = await a.turn_end(mid)
        assert (end.payload["ok"], end.payload["outcome"]) == (False, "failed")
        failed = await a.run.wait_event("turn_failed")
        assert failed.payload["message_id"] == mid
        assert "Credit balance is too low" in failed.payload["reason"]
        assert await a.acked(mid)
        recent = await call(a.host, "recent", limit=20)
        notices = [
            json.loads(r["body"])
            for r in recent["rows"]
            if r["from"] == "alice" and r["to"] == "operator"
        ]
        assert notices == [
            {"event": "turn_failed", "message_id": mid, "reason": failed.payload["reason"]}
        ]
        assert len(standin.received(a.run.key)) == 1  # not retried


async def test_transient_failures_give_up_after_the_attempts_and_report(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    async with alice(tmp_path, claude_bin, standin, retry_attempts=1) as a:
        standin.script(a.run.key, ApiError.overloaded(), ApiError.overloaded(), Text("unused"))
        mid = await a.send("work")
        failed = await a.run.wait_event("turn_failed")
        assert failed.payload["message_id"] == mid
        assert "gave up after 2 attempts" in failed.payload["reason"]
        assert await a.acked(mid)
        assert len(standin.received(a.run.key)) == 2
        assert standin.pending(a.run.key) == 1


async def test_a_turn_failed_notice_is_never_answered_with_one(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    async with alice(tmp_path, claude_bin, standin) as a:
        standin.script(a.run.key, ApiError.bad_request())
        notice = json.dumps({"event": "turn_failed", "message_id": 1, "reason": "x"})
        mid = await a.send(notice)
        await a.run.wait_event("turn_failed")
        assert await a.acked(mid)
        recent = await call(a.host, "recent", limit=20)
        assert not [r for r in recent["rows"] if r["from"] == "alice"]


async def test_a_message_arriving_during_a_retry_wait_is_handled_after_it(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    async with alice(tmp_path, claude_bin, standin, retry_base_seconds=1.0) as a:
        standin.script(a.run.key, ApiError.overloaded(), Text("first"), Text("second"))
        first = await a.send("one")
        await a.turn_end(first)  # the transient failure: now waiting for the retry
        second = await a.send("two")
        await ok_end(a, second)

        def order() -> list[tuple[str, int]]:
            return [
                (e.kind, e.payload["message_id"])
                for e in events_of(a)
                if e.kind in ("turn_start", "turn_end")
            ]

        await eventually(lambda: ("turn_end", second) in order())  # the store lags the bus
        assert order() == [
            ("turn_start", first),
            ("turn_end", first),
            ("turn_start", first),
            ("turn_end", first),
            ("turn_start", second),
            ("turn_end", second),
        ]
        await exactly_one_ok_turn(a, first)
        await exactly_one_ok_turn(a, second)


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    for attempt, full in [(1, 2.0), (2, 4.0), (3, 8.0), (10, 30.0)]:
        delays = {backoff_seconds(attempt, 2.0, 30.0) for _ in range(50)}
        assert all(full / 2 <= d <= full for d in delays)
        assert len(delays) > 1  # jittered


def test_turn_failed_notice_is_recognised() -> None:
    assert is_turn_failed_notice('{"event": "turn_failed", "message_id": 3}')
    assert not is_turn_failed_notice('{"event": "other"}')
    assert not is_turn_failed_notice("turn_failed")


async def test_in_process_tools_return_the_brokers_errors_to_the_model(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    async with alice(tmp_path, claude_bin, standin) as a:
        standin.script(
            a.run.key,
            ToolCall("mcp__hyperhive__send", {"to": "nobody", "body": "hi"}),
            Text("noted"),
        )
        mid = await a.send("say hi to nobody")
        await ok_end(a, mid)
        last = standin.received(a.run.key)[-1]
        (result,) = tool_results(last.body)
        assert "unknown recipient 'nobody'" in result, result

        def inits() -> list[dict[str, Any]]:
            return [
                e.payload
                for e in events_of(a)
                if e.kind == "stream" and e.payload.get("subtype") == "init"
            ]

        await eventually(inits)  # the store lags the bus
        init = inits()[0]
        assert {"name": "hyperhive", "status": "connected"}.items() <= next(
            s for s in init["mcp_servers"] if s["name"] == "hyperhive"
        ).items()


async def test_a_turn_without_a_result_is_ended_at_the_deadline(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    async with alice(tmp_path, claude_bin, standin, turn_timeout_seconds=3.0) as a:
        hang = Hang(max_seconds=120)  # the model never finishes
        standin.script(a.run.key, hang, Text("next one"))
        mid = await a.send("work")
        start = await a.run.wait_event("turn_start", lambda e: e.payload["message_id"] == mid)
        failed = await a.run.wait_event("turn_failed", within=60)
        assert failed.payload["message_id"] == mid
        assert "deadline" in failed.payload["reason"]
        assert await a.acked(mid)
        await eventually(lambda: not Path(f"/proc/{start.payload['pid']}").exists())
        second = await a.send("next")
        assert (await a.turn_end(second)).payload["ok"] is True

"""Operator questions: answer, cancel, expiry; exactly one operator_answered each (SPEC §9)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from hivetest import Client, call, drain, running_hive


def answered_events(db: Path, asker: str) -> list[dict[str, object]]:
    conn = sqlite3.connect(db)
    try:
        bodies = conn.execute(
            "SELECT body FROM messages WHERE sender = 'system' AND recipient = ?", (asker,)
        ).fetchall()
    finally:
        conn.close()
    events = []
    for (body,) in bodies:
        try:
            event = json.loads(body)
        except ValueError:
            continue  # a plain kick note
        if event.get("event") == "operator_answered":
            events.append(event)
    return events


async def test_answer_delivers_one_event_and_a_second_answer_is_a_no_op(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        host = hive.settings.host_socket
        await call(host, "spawn", name="alice")
        alice = hive.lifecycle.paths("alice").socket
        await drain(alice)
        asked = await call(
            alice, "ask_operator", question="Deploy?", options=["yes", "no"], multi=False
        )
        assert asked["kind"] == "question_queued"
        listed = (await call(host, "questions"))["items"]
        assert [(q["id"], q["options"]) for q in listed] == [(asked["id"], ["yes", "no"])]
        first = await call(host, "answer", id=asked["id"], answer="yes")
        assert first["message"] == "answered"
        second = await call(host, "answer", id=asked["id"], answer="no")
        assert second["message"] == "already resolved"
        assert (await call(host, "cancel_question", id=asked["id"]))["message"] == (
            "already resolved"
        )
        got = await drain(alice)
        events = [json.loads(m["body"]) for m in got]
        assert events == [
            {
                "event": "operator_answered",
                "id": asked["id"],
                "question": "Deploy?",
                "answer": "yes",
            }
        ]
        assert (await call(host, "questions"))["items"] == []


async def test_cancel_emits_exactly_one_cancelled_event(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        host = hive.settings.host_socket
        await call(host, "spawn", name="alice")
        alice = hive.lifecycle.paths("alice").socket
        asked = await call(alice, "ask_operator", question="Lunch?")
        results = await asyncio.gather(
            *(call(host, "cancel_question", id=asked["id"]) for _ in range(5))
        )
        assert sorted(r["message"] for r in results) == ["already resolved"] * 4 + ["cancelled"]
        events = answered_events(hive.settings.broker_db, "alice")
        assert [e["answer"] for e in events] == ["[cancelled]"]


async def test_ttl_expiry_emits_exactly_one_expired_event(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        host = hive.settings.host_socket
        await call(host, "spawn", name="alice")
        alice = hive.lifecycle.paths("alice").socket
        await drain(alice)
        asked = await call(alice, "ask_operator", question="Quick?", ttl_seconds=1)
        listed = (await call(host, "questions"))["items"]
        assert listed[0]["deadline_at"] is not None
        receiver = await Client.open(alice)
        reply = await receiver.call("recv", wait_seconds=10)
        await receiver.close()
        assert reply["kind"] == "messages"
        event = json.loads(reply["items"][0]["body"])
        assert event == {
            "event": "operator_answered",
            "id": asked["id"],
            "question": "Quick?",
            "answer": "[expired]",
        }
        late = await call(host, "answer", id=asked["id"], answer="too late")
        assert late["message"] == "already resolved"
        assert len(answered_events(hive.settings.broker_db, "alice")) == 1


async def test_unknown_question_and_bad_ttl_are_clear_errors(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        host = hive.settings.host_socket
        await call(host, "spawn", name="alice")
        reply = await call(host, "answer", id=99, answer="x")
        assert reply == {"kind": "err", "message": "no operator question #99"}
        too_long = await call(
            hive.lifecycle.paths("alice").socket, "ask_operator", question="q", ttl_seconds=21601
        )
        assert too_long["kind"] == "err"
        assert "ttl_seconds" in too_long["message"]


async def test_open_questions_per_agent_are_capped_with_a_clear_error(tmp_path: Path) -> None:
    """Issue 13: one agent cannot bury the operator under questions."""
    async with running_hive(tmp_path, max_open_questions_per_agent=3) as hive:
        host = hive.settings.host_socket
        await call(host, "spawn", name="alice")
        await call(host, "spawn", name="bob")
        alice = await Client.open(hive.lifecycle.paths("alice").socket)
        bob = hive.lifecycle.paths("bob").socket
        replies = [await alice.call("ask_operator", question=f"q{i}?") for i in range(4)]
        assert [r["kind"] for r in replies] == ["question_queued"] * 3 + ["err"]
        message = replies[-1]["message"]
        assert "HYPERHIVE_MAX_OPEN_QUESTIONS_PER_AGENT" in message
        assert "alice" in message
        assert "3" in message
        # nothing stored for the refused one; bob can still ask
        assert [q["question"] for q in (await call(host, "questions"))["items"]] == [
            "q0?",
            "q1?",
            "q2?",
        ]
        assert (await call(bob, "ask_operator", question="mine?"))["kind"] == "question_queued"
        # once the operator answers one, alice may ask again
        await call(host, "answer", id=replies[0]["id"], answer="yes")
        again = await alice.call("ask_operator", question="q4?")
        assert again["kind"] == "question_queued"
        await alice.close()

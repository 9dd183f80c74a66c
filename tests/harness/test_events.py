"""Event bus fan-out and the sqlite event store."""

from __future__ import annotations

from pathlib import Path

from hyperhive.harness.events import SUBSCRIBER_BACKLOG, EventBus
from hyperhive.harness.loop import wake_prompt
from hyperhive.harness.store import EventStore
from hyperhive.wire.responses import MessageItem


async def test_every_subscriber_gets_every_event() -> None:
    bus = EventBus()
    async with bus.subscribe() as one, bus.subscribe() as two:
        bus.publish("note", {"text": "a"})
        bus.publish("note", {"text": "b"})
        assert [one.get_nowait().payload["text"] for _ in range(2)] == ["a", "b"]
        assert [two.get_nowait().payload["text"] for _ in range(2)] == ["a", "b"]
    bus.publish("note", {"text": "after"})  # no subscribers left: must not fail


async def test_a_stuck_subscriber_loses_its_oldest_events_only() -> None:
    bus = EventBus()
    async with bus.subscribe() as queue:
        for i in range(SUBSCRIBER_BACKLOG + 5):
            bus.publish("note", {"i": i})
        assert queue.qsize() == SUBSCRIBER_BACKLOG
        assert queue.get_nowait().payload["i"] == 5


async def test_store_keeps_events_and_ids_continue_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    store = EventStore.open(path)
    assert store is not None
    store.start()
    bus = EventBus(store, store.next_id())
    bus.publish("turn_start", {"message_id": 1})
    bus.publish("turn_end", {"ok": True})
    await store.close()
    again = EventStore.open(path)
    assert again is not None
    events = again.list_events()
    assert [(e.id, e.kind) for e in events] == [(1, "turn_start"), (2, "turn_end")]
    assert events[1].payload == {"ok": True}
    assert again.next_id() == 3
    journal = again._db.read(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
    assert journal == "wal"
    await again.close()


def test_unopenable_store_is_none(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert EventStore.open(tmp_path / "file" / "events.sqlite") is None


def item(**fields: object) -> MessageItem:
    return MessageItem.model_validate(
        {"id": 7, "from": "bob", "body": "hi", "sent_at": 0, **fields}
    )


def test_wake_prompt_says_who_what_and_how_many_more() -> None:
    prompt = wake_prompt(item(in_reply_to=3), more=2)
    assert prompt.splitlines()[0] == "New message #7 from bob (in reply to #3):"
    assert "hi" in prompt
    assert "(2 more pending — drain with recv)" in prompt
    assert "redelivered" not in prompt


def test_wake_prompt_marks_redelivery_and_broadcast() -> None:
    prompt = wake_prompt(item(redelivered=True, broadcast=True), more=0)
    assert "redelivered" in prompt
    assert "may need no action" in prompt
    assert "more pending" not in prompt

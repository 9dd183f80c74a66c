"""The change feed numbers every change and fans it out to live subscribers."""

from __future__ import annotations

from pathlib import Path

from hivetest import call, running_hive


async def test_changes_are_numbered_and_fanned_out(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        first = hive.hub.subscribe()
        second = hive.hub.subscribe()
        start = hive.hub.seq
        await call(hive.settings.host_socket, "spawn", name="alice")
        await call(hive.lifecycle.paths("alice").socket, "ask_operator", question="hm?")
        kinds = []
        while not first.empty():
            change = first.get_nowait()
            kinds.append(change.kind)
            assert change.seq > start
            start = change.seq
        assert "agent" in kinds
        assert "message" in kinds
        assert kinds[-1] == "question"
        assert second.qsize() == len(kinds)


async def test_a_subscriber_that_falls_behind_is_dropped_not_blocking(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        slow = hive.hub.subscribe(maxsize=2)
        fast = hive.hub.subscribe()
        for i in range(3):  # the third overflows `slow`
            hive.hub.publish("message", {"n": i})
        # Emptying the slow queue must not bring it back: a dropped subscriber stays dropped,
        # so what it holds is only what it took before it fell behind.
        held = [slow.get_nowait().data["n"] for _ in range(slow.qsize())]
        hive.hub.publish("message", {"n": 99})
        assert held == [0, 1]
        assert slow.empty()
        # The others are not held back by it.
        assert [fast.get_nowait().data["n"] for _ in range(fast.qsize())] == [0, 1, 2, 99]
        hive.hub.unsubscribe(fast)
        assert not hive.hub.active


async def test_events_stored_by_other_services_reach_the_message_flow(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        await call(hive.settings.host_socket, "spawn", name="alice")
        asked = await call(hive.lifecycle.paths("alice").socket, "ask_operator", question="ok?")
        feed = hive.hub.subscribe()
        await call(hive.settings.host_socket, "answer", id=asked["id"], answer="yes")
        messages = []
        while not feed.empty():
            change = feed.get_nowait()
            if change.kind == "message":
                messages.append(change.data)
        assert [(m["from"], m["to"]) for m in messages] == [("system", "alice")]
        assert '"operator_answered"' in messages[0]["body"]

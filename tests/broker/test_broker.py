"""Broker semantics over real sockets and a real store, sqlite and PostgreSQL (SPEC §5)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from hivetest import Client, call, drain, query, running_hive, wait_until


async def spawn_all(hive_socket: Path, *names: str) -> None:
    for name in names:
        assert (await call(hive_socket, "spawn", name=name))["kind"] == "ok"


async def test_broadcast_reaches_every_live_agent_but_the_sender(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        host = hive.settings.host_socket
        await spawn_all(host, "alice", "bob", "carol")
        sock = {n: hive.lifecycle.paths(n).socket for n in ("alice", "bob", "carol", "manager")}
        for path in sock.values():
            await drain(path)
        reply = await call(sock["alice"], "send", to="*", body="standup in 5")
        assert reply["kind"] == "ok"
        assert len(reply["ids"]) == 3
        for name in ("bob", "carol", "manager"):
            got = await drain(sock[name])
            assert [(m["from"], m["body"], m["broadcast"]) for m in got] == [
                ("alice", "standup in 5", True)
            ]
        assert await drain(sock["alice"]) == []


async def test_unknown_recipient_is_refused_and_nothing_stored(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        await spawn_all(hive.settings.host_socket, "alice", "carol")
        before = query(hive, "SELECT count(*) FROM messages")
        reply = await call(hive.lifecycle.paths("alice").socket, "send", to="bob", body="hi")
        assert reply == {
            "kind": "err",
            "message": "unknown recipient 'bob' — known: alice, carol, manager, operator",
        }
        assert query(hive, "SELECT count(*) FROM messages") == before


async def test_allow_list_is_enforced_by_the_daemon(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        await spawn_all(hive.settings.host_socket, "alice", "bob", "carol")
        await hive.registry.set_allowed_recipients("alice", ["bob"])
        alice = hive.lifecycle.paths("alice").socket
        refused = await call(alice, "send", to="carol", body="psst")
        assert refused["kind"] == "err"
        assert "may not send to 'carol'" in refused["message"]
        assert (await call(alice, "send", to="bob", body="ok"))["kind"] == "ok"
        # the manager and the operator are always allowed
        assert (await call(alice, "send", to="manager", body="ok"))["kind"] == "ok"
        assert (await call(alice, "send", to="operator", body="ok"))["kind"] == "ok"
        assert (await call(alice, "send", to="*", body="all"))["kind"] == "err"
        bodies = query(hive, "SELECT body FROM messages WHERE sender='alice'")
        assert sorted(b for (b,) in bodies) == ["ok", "ok", "ok"]


async def test_parked_recv_is_woken_by_the_send_itself(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        await spawn_all(hive.settings.host_socket, "alice", "bob")
        bob = hive.lifecycle.paths("bob").socket
        await drain(bob)
        receiver = await Client.open(bob)
        for i in range(3):
            parked = asyncio.create_task(receiver.call("recv", wait_seconds=60))
            await wait_until(lambda: hive.broker.parked("bob") == 1, what="the recv to park")
            assert not parked.done()
            await call(hive.lifecycle.paths("alice").socket, "send", to="bob", body=f"m{i}")
            # The send's own commit resolved the waiter before the send was answered: no
            # timer or poll is left to wake it (a polling recv would still be parked here).
            assert hive.broker.parked("bob") == 0
            reply = await asyncio.wait_for(parked, 5)
            assert reply["kind"] == "messages"
            assert reply["items"][0]["body"] == f"m{i}"
            await receiver.call("ack", ids=[reply["items"][0]["id"]])
        await receiver.close()


async def test_recv_with_zero_wait_returns_empty_at_once(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        await spawn_all(hive.settings.host_socket, "alice")
        alice = hive.lifecycle.paths("alice").socket
        await drain(alice)
        start = time.perf_counter()
        assert await call(alice, "recv", wait_seconds=0) == {"kind": "empty"}
        assert time.perf_counter() - start < 1
        start = time.perf_counter()
        assert await call(alice, "recv", wait_seconds=0.2) == {"kind": "empty"}
        assert time.perf_counter() - start >= 0.19


async def test_200_concurrent_senders_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    # 200 connections at once to one socket: above the default per-socket limit
    async with running_hive(tmp_path, max_connections_per_socket=256) as hive:
        await spawn_all(hive.settings.host_socket, "alice", "bob")
        alice = hive.lifecycle.paths("alice").socket
        bob = hive.lifecycle.paths("bob").socket
        await drain(bob)

        async def sender(i: int) -> int:
            reply = await call(alice, "send", to="bob", body=f"n{i}")
            assert reply["kind"] == "ok", reply
            return int(reply["ids"][0])

        ids = await asyncio.gather(*(sender(i) for i in range(200)))
        assert len(set(ids)) == 200
        got = await drain(bob)
        assert sorted(m["body"] for m in got) == sorted(f"n{i}" for i in range(200))
        assert [m["id"] for m in got] == sorted(ids)


async def test_unacked_delivery_is_redelivered_after_reconnect(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        await spawn_all(hive.settings.host_socket, "alice", "bob")
        bob = hive.lifecycle.paths("bob").socket
        await drain(bob)
        alice = hive.lifecycle.paths("alice").socket
        await call(alice, "send", to="bob", body="keep")
        await call(alice, "send", to="bob", body="done")
        first = await Client.open(bob)
        popped = await first.call("recv", max=2)
        assert [m["body"] for m in popped["items"]] == ["keep", "done"]
        assert not any(m["redelivered"] for m in popped["items"])
        await first.call("ack", ids=[popped["items"][1]["id"]])
        await first.close()  # the harness died mid-turn

        async def redelivered() -> dict[str, object]:
            while True:
                reply = await call(bob, "recv", wait_seconds=5, max=5)
                if reply["kind"] == "messages":
                    return reply

        reply = await asyncio.wait_for(redelivered(), 10)
        assert [(m["body"], m["redelivered"]) for m in reply["items"]] == [("keep", True)]


async def test_status_and_recent_do_not_consume(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        await spawn_all(hive.settings.host_socket, "alice", "bob")
        bob = hive.lifecycle.paths("bob").socket
        await drain(bob)
        alice = hive.lifecycle.paths("alice").socket
        await call(alice, "send", to="bob", body="one")
        await call(alice, "send", to="bob", body="two")
        assert await call(bob, "status") == {"kind": "status", "unread": 2}
        recent = await call(bob, "recent", limit=2)
        assert [(r["from"], r["to"], r["body"]) for r in recent["rows"]] == [
            ("alice", "bob", "one"),
            ("alice", "bob", "two"),
        ]
        assert await call(bob, "status") == {"kind": "status", "unread": 2}


async def test_spawn_sends_system_events_and_a_kick(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        manager = hive.lifecycle.paths("manager").socket
        await drain(manager)
        await spawn_all(hive.settings.host_socket, "alice")
        got = await drain(manager)
        events = [json.loads(m["body"]) for m in got if m["from"] == "system"]
        assert {"event": "spawned", "agent": "alice", "revived": False} in events
        kick = await drain(hive.lifecycle.paths("alice").socket)
        assert kick[0]["from"] == "system"
        assert "/state" in kick[0]["body"]


async def test_manager_socket_identity_and_self_protection(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        manager = hive.lifecycle.paths("manager").socket
        who = await call(manager, "whoami")
        assert who == {"kind": "whoami", "name": "manager", "role": "manager", "port": 8000}
        reply = await call(manager, "kill", name="manager")
        assert reply["kind"] == "err"
        assert "itself" in reply["message"]


async def test_a_client_hanging_up_during_a_parked_recv_is_noticed_at_once(
    tmp_path: Path,
) -> None:
    async with running_hive(tmp_path) as hive:
        await spawn_all(hive.settings.host_socket, "alice", "bob")
        bob = hive.lifecycle.paths("bob").socket
        await drain(bob)
        ghost = await Client.open(bob)
        ghost.writer.write(b'{"cmd": "recv", "wait_seconds": 120}\n')
        await ghost.writer.drain()

        def parked() -> int:
            return len(hive.broker._waiters.get("bob", ()))

        await wait_until(parked, what="the recv to park")
        await ghost.close()
        await wait_until(lambda: parked() == 0, what="the dead connection's recv to end")
        await call(hive.lifecycle.paths("alice").socket, "send", to="bob", body="fresh")
        reply = await call(bob, "recv", wait_seconds=5)
        assert [(m["body"], m["redelivered"]) for m in reply["items"]] == [("fresh", False)]


async def test_requests_pipelined_behind_a_parked_recv_are_answered_in_order(
    tmp_path: Path,
) -> None:
    async with running_hive(tmp_path) as hive:
        await spawn_all(hive.settings.host_socket, "alice", "bob")
        bob = hive.lifecycle.paths("bob").socket
        await drain(bob)
        client = await Client.open(bob)
        client.writer.write(
            b'{"cmd": "recv", "wait_seconds": 30}\n{"cmd": "status"}\n{"cmd": "whoami"}\n'
        )
        await client.writer.drain()
        await call(hive.lifecycle.paths("alice").socket, "send", to="bob", body="first")
        replies = [json.loads(await client.reader.readline()) for _ in range(3)]
        assert [r["kind"] for r in replies] == ["messages", "status", "whoami"]
        assert replies[0]["items"][0]["body"] == "first"
        await client.close()


async def test_a_login_retires_the_undelivered_needs_login_it_contradicts(tmp_path: Path) -> None:
    """The manager must not act on `needs_login` for an agent that has since logged in."""
    async with running_hive(tmp_path) as hive:
        await drain(hive.lifecycle.paths("manager").socket)  # type: ignore[arg-type]
        stale = await hive.broker.system_event("manager", "needs_login", agent="alice")
        other = await hive.broker.system_event("manager", "needs_login", agent="bob")
        fresh = await hive.broker.system_event(
            "manager", "logged_in", supersedes=("needs_login", "logged_in"), agent="alice"
        )
        got = await drain(hive.lifecycle.paths("manager").socket)  # type: ignore[arg-type]
        assert [m["id"] for m in got] == [other, fresh]
        assert stale not in [m["id"] for m in got]
        bodies = [json.loads(m["body"]) for m in got]
        assert bodies == [
            {"event": "needs_login", "agent": "bob"},
            {"event": "logged_in", "agent": "alice"},
        ]


async def test_a_nul_in_a_body_is_stored_or_refused_clearly_and_nothing_else_fails(
    tmp_path: Path, store: str
) -> None:
    """sqlite stores any text; PostgreSQL text cannot hold NUL: the sender is told so (not
    "internal error"), and a send committed beside it in the same batch is unharmed."""
    async with running_hive(tmp_path) as hive:
        await spawn_all(hive.settings.host_socket, "alice", "bob")
        alice = hive.lifecycle.paths("alice").socket
        bob = hive.lifecycle.paths("bob").socket
        await drain(bob)
        odd, plain = await asyncio.gather(
            call(alice, "send", to="bob", body="a\x00b"),
            call(alice, "send", to="bob", body="plain"),
        )
        assert plain["kind"] == "ok", plain
        if store == "sqlite":
            assert odd["kind"] == "ok", odd
            assert sorted(m["body"] for m in await drain(bob)) == ["a\x00b", "plain"]
        else:
            assert odd["kind"] == "err"
            assert "NUL character" in odd["message"]
            assert [m["body"] for m in await drain(bob)] == ["plain"]

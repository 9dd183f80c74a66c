"""Per-sender limits of the broker: send rate and stored bytes of unacked messages, the
operator's inbox included (issue 13, "Limits per identity")."""

from __future__ import annotations

import json
from pathlib import Path

from hivetest import Client, call, drain, query, running_hive
from hyperhive.daemon import Hive

KIB = 1024
MIB = 1024 * KIB
BIG = "x" * (256 * KIB)


def stored_unacked_bytes(hive: Hive, sender: str) -> int:
    size = hive.db.dialect.body_bytes
    sql = f"SELECT coalesce(sum({size}), 0) FROM messages WHERE sender = ? AND acked_at IS NULL"
    return int(query(hive, sql, sender)[0][0])


async def test_operator_bound_flood_is_refused_at_the_cap_and_acks_make_room(
    tmp_path: Path,
) -> None:
    cap = 2 * MIB
    async with running_hive(tmp_path, max_unacked_bytes_per_sender=cap) as hive:
        host = hive.settings.host_socket
        await call(host, "spawn", name="alice")
        alice = await Client.open(hive.lifecycle.paths("alice").socket)
        accepted: list[int] = []
        refusal = None
        for _ in range(40):  # 10 MiB if nothing stops it
            reply = await alice.call("send", to="operator", body=BIG)
            if reply["kind"] != "ok":
                refusal = reply
                break
            accepted += reply["ids"]
        assert refusal is not None, "40 sends of 256 KiB to the operator were all stored"
        assert refusal["kind"] == "err"
        message = refusal["message"]
        assert "HYPERHIVE_MAX_UNACKED_BYTES_PER_SENDER" in message
        assert "alice" in message
        assert "operator" in message
        assert stored_unacked_bytes(hive, "alice") <= cap
        # nothing accepted was lost, nothing refused was stored
        assert len(accepted) == cap // len(BIG)
        stored = [r[0] for r in query(hive, "SELECT id FROM messages WHERE sender = 'alice'")]
        assert sorted(stored) == sorted(accepted)
        # another sender is not affected by alice's backlog
        await call(host, "spawn", name="bob")
        bob = hive.lifecycle.paths("bob").socket
        assert (await call(bob, "send", to="operator", body="hello"))["kind"] == "ok"
        # the operator reads (acks) alice's messages: she may send again
        acked = await call(host, "ack", ids=accepted)
        assert acked["kind"] == "ok", acked
        assert stored_unacked_bytes(hive, "alice") == 0
        assert (await alice.call("send", to="operator", body=BIG))["kind"] == "ok"
        await alice.close()


async def test_operator_ack_touches_only_operator_messages(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        host = hive.settings.host_socket
        await call(host, "spawn", name="alice")
        await call(host, "spawn", name="bob")
        alice = hive.lifecycle.paths("alice").socket
        bob = hive.lifecycle.paths("bob").socket
        await drain(bob)
        to_bob = (await call(alice, "send", to="bob", body="for bob"))["ids"]
        await call(host, "ack", ids=to_bob)  # not the operator's: ignored
        got = await drain(bob)
        assert [m["body"] for m in got] == ["for bob"]


async def test_agent_to_agent_backlog_counts_until_the_recipient_acks(tmp_path: Path) -> None:
    cap = 1 * MIB
    async with running_hive(tmp_path, max_unacked_bytes_per_sender=cap) as hive:
        host = hive.settings.host_socket
        await call(host, "spawn", name="alice")
        await call(host, "spawn", name="bob")
        alice = await Client.open(hive.lifecycle.paths("alice").socket)
        bob = hive.lifecycle.paths("bob").socket
        await drain(bob)
        replies = [await alice.call("send", to="bob", body=BIG) for _ in range(5)]
        assert [r["kind"] for r in replies] == ["ok"] * 4 + ["err"]
        assert "bob" in replies[-1]["message"]
        assert len(await drain(bob)) == 4  # bob receives and acks them: room again
        assert (await alice.call("send", to="bob", body=BIG))["kind"] == "ok"
        await alice.close()


async def test_send_rate_is_limited_per_sender_with_a_clear_error(tmp_path: Path) -> None:
    async with running_hive(tmp_path, send_rate_per_second=0.01, send_burst=5) as hive:
        host = hive.settings.host_socket
        await call(host, "spawn", name="alice")
        await call(host, "spawn", name="bob")
        alice = await Client.open(hive.lifecycle.paths("alice").socket)
        bob = hive.lifecycle.paths("bob").socket
        replies = [await alice.call("send", to="operator", body=f"n{i}") for i in range(6)]
        assert [r["kind"] for r in replies] == ["ok"] * 5 + ["err"]
        message = replies[-1]["message"]
        assert "HYPERHIVE_SEND_RATE_PER_SECOND" in message
        assert "alice" in message
        # the refused send was not stored; another sender and the operator are unaffected
        bodies = [
            r[0] for r in query(hive, "SELECT body FROM messages WHERE sender='alice' ORDER BY id")
        ]
        assert bodies == [f"n{i}" for i in range(5)]
        assert (await call(bob, "send", to="operator", body="hi"))["kind"] == "ok"
        for _ in range(10):
            assert (await call(host, "send", to="alice", body="op"))["kind"] == "ok"
        await alice.close()


async def test_reading_the_operator_inbox_frees_the_senders_and_only_the_operator_may(
    tmp_path: Path,
) -> None:
    cap = 1 * MIB
    async with running_hive(tmp_path, max_unacked_bytes_per_sender=cap) as hive:
        host = hive.settings.host_socket
        await call(host, "spawn", name="alice")
        alice = await Client.open(hive.lifecycle.paths("alice").socket)
        replies = [await alice.call("send", to="operator", body=BIG) for _ in range(5)]
        assert [r["kind"] for r in replies] == ["ok"] * 4 + ["err"]
        # an agent cannot mark the operator's inbox read to make room for itself
        refused = await alice.call("read_inbox")
        assert refused["kind"] == "err"
        assert stored_unacked_bytes(hive, "alice") == cap
        first = replies[0]["ids"][0]
        done = await call(host, "read_inbox", up_to=first)
        assert done["message"] == "marked 1 operator message(s) read"
        assert stored_unacked_bytes(hive, "alice") == cap - len(BIG)
        done = await call(host, "read_inbox")
        assert done["message"] == "marked 3 operator message(s) read"
        assert stored_unacked_bytes(hive, "alice") == 0
        assert (await alice.call("send", to="operator", body=BIG))["kind"] == "ok"
        await alice.close()
    # after a restart the allowance is computed from what is stored
    async with running_hive(tmp_path, max_unacked_bytes_per_sender=cap) as hive:
        assert hive.broker.unacked_bytes("alice") == len(BIG)


async def test_recent_replies_are_bounded_in_bytes_and_keep_the_newest(tmp_path: Path) -> None:
    """64 connections x `recent limit=500` of 256 KiB bodies would be 8 GB in the daemon."""
    async with running_hive(tmp_path) as hive:
        host = hive.settings.host_socket
        await call(host, "spawn", name="alice")
        await call(host, "spawn", name="bob")
        alice = hive.lifecycle.paths("alice").socket
        bob = await Client.open(hive.lifecycle.paths("bob").socket)
        for i in range(12):
            assert (await bob.call("send", to="alice", body=f"{i:02d}" + BIG[2:]))["kind"] == "ok"
        await bob.close()
        client = await Client.open(alice)
        client.writer.write(b'{"cmd": "recent", "limit": 500}\n')
        await client.writer.drain()
        raw = await client.reader.readline()
        await client.close()
        assert len(raw) < 2 * MIB, f"recent answered {len(raw)} bytes"
        rows = json.loads(raw)["rows"]
        assert rows[-1]["body"].startswith("11")  # the newest is always there, whole
        assert len(rows[-1]["body"]) == len(BIG)

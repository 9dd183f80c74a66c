"""A hostile agent, manager or racing operator against a hive of two hosts on one real
PostgreSQL database (docs/security.md, "A hive on several hosts"). Each test is an attack;
the ones marked in docs/security.md failed on the code before the fix they prove."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from hivetest import Client, call, drain, query, running_hive, wait_until
from hivetest.pg import PgServer
from hyperhive.agents.names import OPERATOR
from hyperhive.agents.store import AgentState
from hyperhive.broker import store as broker_store
from hyperhive.errors import Conflict
from hyperhive.wire.roles import Role
from multihost.test_two_hosts import spawn_on, two_hosts


async def test_two_hosts_racing_to_spawn_one_name_leave_one_owner(
    tmp_path: Path, pg_server: PgServer
) -> None:
    """Both hosts' caches say "no such agent" until the other's NOTIFY arrives: two spawns
    (or a spawn and an approval) of one name at once must not both win, or two hosts run
    `alice`, both pop her messages and the row names whichever wrote last."""
    async with two_hosts(tmp_path, pg_server) as (alpha, beta):
        names = [f"r{i}" for i in range(4)]
        replies = await asyncio.gather(
            *(call(h.settings.host_socket, "spawn", name=n) for n in names for h in (alpha, beta))
        )
        asked = await call(beta.settings.host_socket, "request_spawn", name="carol")
        assert asked["kind"] == "ok", asked
        [pending] = (await call(beta.settings.host_socket, "pending"))["items"]
        raced = await asyncio.gather(
            call(alpha.settings.host_socket, "spawn", name="carol"),
            call(beta.settings.host_socket, "approve", id=pending["id"]),
        )
        await alpha.lifecycle.wait_idle()
        await beta.approvals.wait_idle()
        await beta.lifecycle.wait_idle()
        pairs = list(zip(replies[::2], replies[1::2], strict=True))
        for name, pair in [*zip(names, pairs, strict=True), ("carol", raced)]:
            kinds = sorted(r["kind"] for r in pair)
            assert kinds == ["err", "ok"], (name, pair)
            [refused] = [r for r in pair if r["kind"] == "err"]
            assert "already exists" in refused["message"] or "runs on host" in refused["message"]
            [(host,)] = query(alpha, "SELECT host FROM agents WHERE name = ?", name)
            for hive in (alpha, beta):
                await wait_until(
                    lambda h=hive, n=name, o=host: h.registry.get(n).host == o,
                    what=f"{hive.registry.host} to agree {name} is {host}'s",
                )
            if name == "carol" and raced[1]["kind"] == "err":
                # the approval lost the race: it says so, it does not stay pending
                status = query(beta, "SELECT status FROM approvals WHERE id = ?", pending["id"])
                assert status == [("failed",)]
            # only the owner opened the agent's socket
            owners = [h for h in (alpha, beta) if h.lifecycle.paths(name).socket.exists()]
            assert [h.registry.host for h in owners] == [host], name

        # two spawns of one name on one host at once: one wins there too
        twice = await asyncio.gather(
            *(call(alpha.settings.host_socket, "spawn", name="same") for _ in range(2))
        )
        assert sorted(r["kind"] for r in twice) == ["err", "ok"], twice
        # a cache that missed beta's row (its tombstone, here) cannot claim or move it
        await spawn_on(beta, "old", alpha)
        assert (await call(beta.settings.host_socket, "destroy", name="old"))["kind"] == "ok"
        stale = dataclasses.replace(
            beta.registry.get("old"), host="alpha", state=AgentState.SPAWNING
        )
        with pytest.raises(Conflict, match="on host 'beta'"):
            await alpha.registry.claim_spawn(stale)
        with pytest.raises(Conflict, match="on host 'beta'"):
            await alpha.registry.save(stale)
        assert query(alpha, "SELECT host, state FROM agents WHERE name = 'old'") == [
            ("beta", "destroyed")
        ]


async def test_a_sender_on_alpha_is_held_to_its_unacked_bytes_by_acks_on_beta(
    tmp_path: Path, pg_server: PgServer
) -> None:
    """The per-sender cap is kept by the sender's host: acks on the recipient's host come
    back as `hive_acked` notifications, and nothing else lowers the count."""
    cap = 256 * 1024  # the smallest the settings allow
    store: dict[str, Any] = {
        "database_url": pg_server.database(),
        "database_password_file": pg_server.password_file,
        "max_unacked_bytes_per_sender": cap,
    }
    async with AsyncExitStack() as stack:
        alpha = await stack.enter_async_context(
            running_hive(tmp_path / "alpha", host_name="alpha", **store)
        )
        beta = await stack.enter_async_context(
            running_hive(tmp_path / "beta", host_name="beta", **store)
        )
        alice = await spawn_on(alpha, "alice", beta)
        bob = await spawn_on(beta, "bob", alpha)
        body = "x" * (cap // 4)
        for _ in range(4):
            assert (await call(alice, "send", to="bob", body=body))["kind"] == "ok"
        over = await call(alice, "send", to="bob", body=body)
        assert over["kind"] == "err", over
        assert "HYPERHIVE_MAX_UNACKED_BYTES_PER_SENDER" in over["message"]
        # a broadcast is counted per recipient, across hosts too
        over = await call(alice, "send", to="*", body="y")
        assert over["kind"] == "err", over
        # popping on beta without acking releases nothing
        client = await Client.open(bob)
        got = await client.call("recv", max=32)
        assert len(got["items"]) == 4
        await asyncio.sleep(0.2)
        assert alpha.broker.unacked_bytes("alice") == cap
        assert (await call(alice, "send", to="bob", body=body))["kind"] == "err"
        await client.call("ack", ids=[m["id"] for m in got["items"][:2]])
        await wait_until(
            lambda: alpha.broker.unacked_bytes("alice") == cap // 2, what="alpha to hear the ack"
        )
        assert (await call(alice, "send", to="bob", body=body))["kind"] == "ok"
        assert (await call(alice, "send", to="bob", body=body))["kind"] == "ok"
        assert (await call(alice, "send", to="bob", body="z"))["kind"] == "err"
        await client.close()


async def test_an_ack_of_messages_from_many_senders_is_heard_by_every_host(
    tmp_path: Path, pg_server: PgServer
) -> None:
    """An ack's `hive_acked` notification carried every sender's released bytes in one
    payload; past PostgreSQL's 8,000 bytes (about 300 senders with long names: the
    operator's inbox of a large hive, or agents that all write to one) the notify raised
    and the ack itself failed, every time: the inbox could never be read."""
    async with two_hosts(tmp_path, pg_server) as (alpha, beta):
        senders = [f"s{i:03d}-abcd-efgh-ij" for i in range(400)]
        assert all(len(s) == 17 for s in senders)

        def insert_all(conn: Any) -> None:
            for sender in senders:
                broker_store.insert_message(
                    conn, sender=sender, recipient=OPERATOR, body="report", now=1
                )

        await alpha.db.write(insert_all)
        alpha.broker._resync()  # alpha counts the rows it did not send through send()
        assert alpha.broker.unacked_bytes(senders[0]) == 6
        read = await call(beta.settings.host_socket, "read_inbox")
        assert read["kind"] == "ok", read
        assert query(beta, "SELECT count(*) FROM messages WHERE acked_at IS NULL") == [(0,)]
        await wait_until(
            lambda: all(alpha.broker.unacked_bytes(s) == 0 for s in senders),
            what="alpha to hear every sender's bytes released",
        )


async def test_a_broadcast_from_beta_costs_alpha_no_read_per_recipient(
    tmp_path: Path, pg_server: PgServer
) -> None:
    """With a dashboard open on alpha, each message another host commits was read back
    on alpha's event loop, one query per row: one agent's burst of broadcasts (1,000 at
    once, each one row per agent) kept every other host's daemon busy reading for as long
    as it lasted. Rows committed together are read together."""
    async with two_hosts(tmp_path, pg_server) as (alpha, beta):
        recipients = [f"m{i}" for i in range(30)]
        for name in recipients:
            await beta.registry.add(name, Role.AGENT)
        await beta.registry.add("loud", Role.AGENT)
        await wait_until(lambda: alpha.registry.find("loud") is not None, what="alpha to learn")
        reads = 0
        real_read = alpha.db.read

        def counting_read(fn: Any) -> Any:
            nonlocal reads
            reads += 1
            return real_read(fn)

        alpha.db.read = counting_read  # type: ignore[method-assign]
        feed = alpha.hub.subscribe()
        sends = 5
        await asyncio.gather(*(beta.broker.send("loud", "*", f"b{i}") for i in range(sends)))
        expected = sends * (len(recipients) + 1)  # the manager gets every broadcast too
        seen: list[dict[str, Any]] = []
        while len(seen) < expected:
            change = await asyncio.wait_for(feed.get(), 10)
            if change.kind == "message":
                seen.append(change.data)
        assert sorted({m["body"] for m in seen}) == [f"b{i}" for i in range(sends)]
        assert len({m["id"] for m in seen}) == expected
        # one read per batch of notifications the loop got at once, not one per row
        assert reads <= 2 * sends, reads


async def test_the_manager_of_alpha_reaches_no_agent_or_approval_of_beta(
    tmp_path: Path, pg_server: PgServer
) -> None:
    """The manager proposes, requests and sees through its own host only; an approval is
    decided and carried out by the host it belongs to."""
    async with two_hosts(tmp_path, pg_server) as (alpha, beta):
        await spawn_on(beta, "bob", alpha)
        manager = alpha.lifecycle.paths("manager").socket
        sha = "0" * 40
        commit = await call(manager, "request_apply_commit", agent="bob", commit_ref=sha)
        assert commit["kind"] == "err", commit
        assert "runs on host 'beta'" in commit["message"]
        spawn = await call(manager, "request_spawn", name="bob")
        assert spawn["kind"] == "err", spawn
        assert "already exists" in spawn["message"]
        for verb in ("kill", "restart", "rebuild", "start"):
            reply = await call(manager, verb, name="bob")
            assert reply["kind"] == "err", (verb, reply)
        assert beta.registry.get("bob").state == "running"
        # a spawn the manager asks for is alpha's: beta cannot approve it, nor can the manager
        asked = await call(manager, "request_spawn", name="dave")
        assert asked["kind"] == "ok", asked
        [item] = (await call(beta.settings.host_socket, "pending"))["items"]
        assert item["host"] == "alpha"
        assert (await call(beta.settings.host_socket, "approve", id=item["id"]))["kind"] == "err"
        assert (await call(manager, "approve", id=item["id"]))["kind"] == "err"
        assert query(beta, "SELECT status FROM approvals WHERE id = ?", item["id"]) == [
            ("pending",)
        ]


async def test_no_password_reaches_an_agent_or_a_log_while_the_database_is_away(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every error an agent gets on its socket while the database is away, and every log
    record of the daemon, is free of the database password."""
    server = PgServer().start()
    try:
        caplog.set_level(logging.DEBUG)
        async with two_hosts(tmp_path, server) as (alpha, beta):
            alice = await spawn_on(alpha, "alice", beta)
            server.stop_server("immediate")
            replies = [
                await call(alice, "send", to="manager", body="hi"),
                await call(alice, "recv", max=1),
                await call(alice, "ask_operator", question="q?"),
                await call(alice, "recent", limit=5),
                await call(alpha.settings.host_socket, "pending"),
            ]
            assert any(r["kind"] == "err" for r in replies), replies
            server.start_server()
            await wait_until(lambda: alpha.db.listening.is_set(), 20, what="reconnect")
            await drain(alice)
        assert server.password not in repr(replies) + caplog.text
    finally:
        server.stop()

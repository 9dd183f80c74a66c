"""A hive of two hosts on one PostgreSQL database: each host a daemon with its own state
and run dirs and its own sockets; agents on either host talk as if on one (SPEC §5 over
docs/scaling.md's design)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from hivetest import Client, call, drain, running_hive, wait_until
from hivetest.pg import PgServer
from hyperhive.daemon import Hive
from hyperhive.dashboard import start_dashboard


@asynccontextmanager
async def two_hosts(root: Path, server: PgServer) -> AsyncIterator[tuple[Hive, Hive]]:
    """alpha and beta on one fresh database; alpha starts first (it gets the manager)."""
    store: dict[str, Any] = {
        "database_url": server.database(),
        "database_password_file": server.password_file,
    }
    async with AsyncExitStack() as stack:
        alpha = await stack.enter_async_context(
            running_hive(root / "alpha", host_name="alpha", **store)
        )
        beta = await stack.enter_async_context(
            running_hive(root / "beta", host_name="beta", **store)
        )
        yield alpha, beta


async def spawn_on(hive: Hive, name: str, *others: Hive) -> Path:
    """Spawn `name` on `hive`; wait until the other hosts know it; its socket."""
    reply = await call(hive.settings.host_socket, "spawn", name=name)
    assert reply["kind"] == "ok", reply
    for other in others:
        await wait_until(
            lambda o=other: (r := o.registry.find(name)) is not None
            and r.host == hive.registry.host,
            what=f"{other.registry.host} to learn of {name}",
        )
    sock = hive.lifecycle.paths(name).socket
    await drain(sock)
    return sock


async def test_alice_on_alpha_and_bob_on_beta_talk_through_their_own_sockets(
    tmp_path: Path, pg_server: PgServer
) -> None:
    async with two_hosts(tmp_path, pg_server) as (alpha, beta):
        alice = await spawn_on(alpha, "alice", beta)
        bob = await spawn_on(beta, "bob", alpha)
        # each host opened only its own agents' sockets
        assert not beta.lifecycle.paths("alice").socket.exists()
        assert not alpha.lifecycle.paths("bob").socket.exists()
        # every host sees the whole hive, with each agent's host
        for hive in (alpha, beta):
            hosts = {r.name: r.host for r in hive.registry.all()}
            assert hosts == {"manager": "alpha", "alice": "alpha", "bob": "beta"}

        receiver = await Client.open(bob)
        waits = []
        for i in range(20):
            parked = asyncio.create_task(receiver.call("recv", wait_seconds=30))
            await wait_until(lambda: beta.broker.parked("bob") == 1, what="bob's recv to park")
            start = time.perf_counter()
            sent = await call(alice, "send", to="bob", body=f"m{i}")
            assert sent["kind"] == "ok", sent
            reply = await parked
            waits.append(time.perf_counter() - start)
            assert [(m["from"], m["body"]) for m in reply["items"]] == [("alice", f"m{i}")]
            await receiver.call("ack", ids=[reply["items"][0]["id"]])
        await receiver.close()
        # Woken by the other host's NOTIFY, not found by a poll: well under a poll period.
        waits.sort()
        assert waits[len(waits) // 2] < 0.25, waits

        # hive-c0re list on either host: every agent with its host; a login is judged only
        # by the host that has the agent's files
        listed = await call(beta.settings.host_socket, "list")
        assert {(a["name"], a["host"], a["needs_login"]) for a in listed["items"]} == {
            ("manager", "alpha", False),
            ("alice", "alpha", False),
            ("bob", "beta", True),
        }
        # the dashboard on beta shows the whole hive with each agent's host; alpha's agents
        # have no buttons there (their verbs belong to alpha)
        bound = await start_dashboard(beta, port=0)
        try:
            auth = {"Authorization": f"Bearer {beta.credentials.dashboard_key()}"}
            async with (
                aiohttp.ClientSession(headers=auth) as s,
                s.get(bound.url + "/api/state?html=1") as r,
            ):
                assert r.status == 200
                snap = await r.json()
        finally:
            await bound.stop()
        html = "".join(snap["html"].values())
        assert snap["host"] == "beta"  # the page's header names the host it acts on
        for name, host in (("alice", "alpha"), ("bob", "beta"), ("manager", "alpha")):
            assert f'data-key="agent-{name}"' in html
            assert f"@{host}" in html
        assert "/kill/bob" in html
        assert "/kill/alice" not in html
        assert "runs on alpha" in html

        # bob answers across the hosts; alice's reply threads to her message
        ids = (await call(bob, "send", to="alice", body="pong", in_reply_to=1))["ids"]
        got = await drain(alice)
        assert [(m["from"], m["body"], m["id"]) for m in got] == [("bob", "pong", ids[0])]


async def test_broadcasts_the_manager_and_the_operator_inbox_are_hive_wide(
    tmp_path: Path, pg_server: PgServer
) -> None:
    async with two_hosts(tmp_path, pg_server) as (alpha, beta):
        alice = await spawn_on(alpha, "alice", beta)
        bob = await spawn_on(beta, "bob", alpha)
        manager = alpha.lifecycle.paths("manager").socket
        await drain(manager)
        # one manager per hive: beta does not run one, and `manager` means alpha's
        assert not beta.lifecycle.paths("manager").socket.exists()
        assert (await call(bob, "send", to="manager", body="hi boss"))["kind"] == "ok"
        assert [m["body"] for m in await drain(manager)] == ["hi boss"]
        # a broadcast from beta reaches alpha's agents
        assert (await call(bob, "send", to="*", body="standup"))["kind"] == "ok"
        assert [m["body"] for m in await drain(alice)] == ["standup"]
        assert [m["body"] for m in await drain(manager)] == ["standup"]
        # the operator inbox: written on alpha, read on beta
        assert (await call(alice, "send", to="operator", body="done"))["kind"] == "ok"
        inbox = await call(beta.settings.host_socket, "recent", limit=10)
        assert [(m["from"], m["body"]) for m in inbox["rows"]] == [("alice", "done")]
        # allow-lists hold hive-wide: set on alpha, enforced on beta
        await alpha.registry.set_allowed_recipients("bob", ["manager"])
        await wait_until(
            lambda: beta.registry.get("bob").allowed_recipients == ["manager"],
            what="beta to hear bob's allow-list",
        )
        refused = await call(bob, "send", to="alice", body="psst")
        assert refused["kind"] == "err"
        assert "may not send to 'alice'" in refused["message"]


async def test_each_agents_lifecycle_and_approvals_stay_with_its_host(
    tmp_path: Path, pg_server: PgServer
) -> None:
    async with two_hosts(tmp_path, pg_server) as (alpha, beta):
        await spawn_on(alpha, "alice", beta)
        # a verb on another host's agent is refused, naming the host to use
        refused = await call(beta.settings.host_socket, "kill", name="alice")
        assert refused["kind"] == "err"
        assert "runs on host 'alpha'" in refused["message"]
        assert alpha.registry.get("alice").state == "running"
        # a name is unique hive-wide
        clash = await call(beta.settings.host_socket, "spawn", name="alice")
        assert clash["kind"] == "err"
        assert "already exists on host 'alpha'" in clash["message"]
        # an approval asked on beta is listed on alpha, carried out only by beta
        asked = await call(beta.settings.host_socket, "request_spawn", name="carol")
        assert asked["kind"] == "ok", asked
        pending = await call(alpha.settings.host_socket, "pending")
        [item] = pending["items"]
        assert (item["agent"], item["host"]) == ("carol", "beta")
        wrong = await call(alpha.settings.host_socket, "approve", id=item["id"])
        assert wrong["kind"] == "err"
        assert "carried out by host beta" in wrong["message"]
        done = await call(beta.settings.host_socket, "approve", id=item["id"])
        assert done["kind"] == "ok", done
        await wait_until(
            lambda: (r := alpha.registry.find("carol")) is not None and r.state == "running",
            what="alpha to see carol running on beta",
        )
        assert alpha.registry.get("carol").host == "beta"


async def test_a_question_asked_on_one_host_is_answered_on_the_other(
    tmp_path: Path, pg_server: PgServer
) -> None:
    async with two_hosts(tmp_path, pg_server) as (alpha, beta):
        bob = await spawn_on(beta, "bob", alpha)
        asked = await call(bob, "ask_operator", question="ship it?", options=["yes", "no"])
        assert asked["kind"] == "question_queued", asked
        listed = await call(alpha.settings.host_socket, "questions")
        [question] = listed["items"]
        assert question["question"] == "ship it?"
        answered = await call(alpha.settings.host_socket, "answer", id=question["id"], answer="yes")
        assert answered["kind"] == "ok", answered
        got = await drain(bob)
        assert any('"answer": "yes"' in m["body"] for m in got), got

"""Faults of a hive on PostgreSQL: the server restarting under load, and one host's daemon
killed -9. The audits: nothing a sender was told `ok` about is lost or stored twice, and
every such message reaches its recipient."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path
from typing import Any

from hivetest import Client, DaemonProcess, call, drain, query, running_hive, wait_until
from hivetest.pg import PgServer

SENDERS = ("s0", "s1", "s2", "s3")


class Load:
    """Senders that send unique bodies to one receiver that recvs and acks, recording
    what each was told."""

    def __init__(self, sockets: dict[str, Path], receiver: Path) -> None:
        self.sockets = sockets
        self.receiver = receiver
        self.ok: set[str] = set()
        self.in_doubt: set[str] = set()
        self.errors: list[str] = []
        self.received: list[str] = []
        self.ack_failed: set[str] = set()
        self.stop = asyncio.Event()

    async def send(self, name: str) -> None:
        client = await Client.open(self.sockets[name])
        i = 0
        while not self.stop.is_set():
            body = f"{name}-{i}"
            i += 1
            reply = await client.call("send", to="sink", body=body)
            if reply["kind"] == "ok":
                self.ok.add(body)
            else:
                self.errors.append(reply["message"])
                self.in_doubt.add(body)
                await asyncio.sleep(0.05)
        await client.close()

    async def receive(self, until_empty: bool = False) -> None:
        client = await Client.open(self.receiver)
        deadline = asyncio.get_running_loop().time() + 120
        while True:
            assert asyncio.get_running_loop().time() < deadline, self.errors[-3:]
            reply = await client.call("recv", wait_seconds=0.3, max=32)
            if reply["kind"] == "messages":
                bodies = [m["body"] for m in reply["items"]]
                self.received += bodies
                acked = await client.call("ack", ids=[m["id"] for m in reply["items"]])
                if acked["kind"] != "ok":
                    self.errors.append(acked["message"])
                    self.ack_failed.update(bodies)
                    # the unacked deliveries come back once this connection closes
                    await client.close()
                    client = await Client.open(self.receiver)
            elif reply["kind"] == "err":
                self.errors.append(reply["message"])
                await asyncio.sleep(0.05)
            elif until_empty or self.stop.is_set():
                break
        await client.close()

    def audit(self, stored: dict[str, int]) -> None:
        counts = collections.Counter(self.received)
        assert self.ok, "no send succeeded"
        lost = sorted(b for b in self.ok if b not in stored)
        assert not lost, f"acknowledged sends not stored: {lost[:10]}"
        doubled = sorted(b for b in self.ok if stored[b] != 1)
        assert not doubled, f"acknowledged sends stored twice: {doubled[:10]}"
        unseen = sorted(b for b in self.ok if counts[b] == 0)
        assert not unseen, f"acknowledged sends never received: {unseen[:10]}"
        # a second delivery only where the first one's ack did not go through
        twice = sorted(b for b, n in counts.items() if n > 1 and b not in self.ack_failed)
        assert not twice, f"delivered twice though acked once: {twice[:10]}"
        strays = sorted(b for b in stored if b not in self.ok and b not in self.in_doubt)
        assert not strays, f"stored messages nobody sent: {strays[:10]}"


async def test_a_database_restart_under_load_gives_clear_errors_then_recovers_losing_nothing(
    tmp_path: Path, own_server: PgServer
) -> None:
    store: dict[str, Any] = {
        "database_url": own_server.database(),
        "database_password_file": own_server.password_file,
        "send_burst": 100000,
        "send_rate_per_second": 100000.0,
    }
    async with running_hive(tmp_path, host_name="alpha", **store) as hive:
        sockets = {}
        for name in (*SENDERS, "sink"):
            assert (await call(hive.settings.host_socket, "spawn", name=name))["kind"] == "ok"
            sockets[name] = hive.lifecycle.paths(name).socket
            await drain(sockets[name])
        load = Load(sockets, sockets["sink"])
        tasks = [asyncio.create_task(load.send(n)) for n in SENDERS]
        tasks.append(asyncio.create_task(load.receive()))
        await wait_until(lambda: len(load.ok) > 200, limit=30, what="traffic before the restart")
        before = len(load.ok)
        await asyncio.to_thread(own_server.stop_server, "immediate")  # a crash
        await wait_until(lambda: len(load.errors) >= 4, limit=30, what="errors during the outage")
        await asyncio.sleep(0.5)
        await asyncio.to_thread(own_server.start_server)
        await wait_until(
            lambda: len(load.ok) > before + 200, limit=60, what="traffic after the restart"
        )
        load.stop.set()
        await asyncio.gather(*tasks)
        await load.receive(until_empty=True)
        # the errors said what failed and what to do, and nothing else broke
        for message in load.errors:
            assert "database" in message, message
            assert "retry" in message, message
        rows = query(
            hive,
            "SELECT body, count(*) FROM messages WHERE recipient = 'sink' AND sender != 'system'"
            " GROUP BY body",
        )
        load.audit({body: int(n) for body, n in rows})
        unacked = query(
            hive, "SELECT count(*) FROM messages WHERE recipient = 'sink' AND acked_at IS NULL"
        )
        assert unacked == [(0,)]


async def test_a_host_killed_9_loses_nothing_and_its_agents_unacked_messages_come_back(
    tmp_path: Path, pg_server: PgServer
) -> None:
    url = pg_server.database()
    env = {
        "HYPERHIVE_DATABASE_URL": url,
        "HYPERHIVE_DATABASE_PASSWORD_FILE": str(pg_server.password_file),
    }
    alpha = DaemonProcess(tmp_path / "alpha", HYPERHIVE_HOST_NAME="alpha", **env)
    beta = DaemonProcess(tmp_path / "beta", HYPERHIVE_HOST_NAME="beta", **env)
    alpha.start()
    beta.start()
    try:
        assert alpha.cli("spawn", "alice").returncode == 0
        assert beta.cli("spawn", "bob").returncode == 0
        alice, bob = alpha.socket_of("alice"), beta.socket_of("bob")
        await drain(alice)
        await drain(bob)
        for i in range(5):
            reply = await call(alice, "send", to="bob", body=f"m{i}")
            assert reply["kind"] == "ok", reply
        # bob takes three and acks one, then his host dies with two unacked
        reader = await Client.open(bob)
        got = await reader.call("recv", max=3)
        assert [m["body"] for m in got["items"]] == ["m0", "m1", "m2"]
        assert (await reader.call("ack", ids=[got["items"][0]["id"]]))["kind"] == "ok"
        beta.kill9()
        await reader.close()
        # alpha goes on: alice still sends to bob (stored for him), and alpha's own start-up
        # does not hand back what beta's agents hold
        assert (await call(alice, "send", to="bob", body="m5"))["kind"] == "ok"
        alpha.stop()
        alpha.start()
        delivered = await asyncio.to_thread(
            _rows,
            pg_server,
            url,
            "SELECT body FROM messages WHERE recipient = 'bob'"
            " AND delivered_at IS NOT NULL AND acked_at IS NULL ORDER BY id",
        )
        assert delivered == [("m1",), ("m2",)]
        # beta returns: bob gets his two unacked again (marked redelivered), then the rest
        beta.start()
        again = await drain(bob)
        # (bob's restart also leaves him a system note to look at his inbox)
        assert [(m["body"], m["redelivered"]) for m in again if m["from"] == "alice"] == [
            ("m1", True),
            ("m2", True),
            ("m3", False),
            ("m4", False),
            ("m5", False),
        ]
        stored = await asyncio.to_thread(
            _rows,
            pg_server,
            url,
            "SELECT body, count(*) FROM messages WHERE sender = 'alice'"
            " GROUP BY body ORDER BY body",
        )
        assert stored == [(f"m{i}", 1) for i in range(6)]
    finally:
        alpha.stop()
        beta.stop()


def _rows(server: PgServer, url: str, sql: str) -> list[tuple[Any, ...]]:
    with server.admin(url.rsplit("/", 1)[1]) as conn:
        return [tuple(r) for r in conn.execute(sql.encode()).fetchall()]

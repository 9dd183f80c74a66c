"""sqlite busy/locked: concurrent readers and a foreign writer on the broker file (SPEC §13).

Other processes open broker.sqlite (an operator's `sqlite3` shell, a backup): readers must
never block the daemon or be blocked by it (WAL), a short foreign write lock only delays
sends (busy_timeout), and one held past the timeout gets a clear refusal with nothing
stored, while reads keep answering, and the daemon recovers by itself once it is released.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from hivetest import Client, DaemonProcess, drain
from rel_support import query

BUSY_TIMEOUT = 5.0
"""The daemon's PRAGMA busy_timeout, in seconds."""


def hold_write_lock(db: Path, seconds: float, locked: threading.Event) -> None:
    """Take sqlite's write lock from a foreign connection and keep it for `seconds`."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    try:
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(seconds)  # the foreign process holding the lock: that is the scenario
        conn.execute("ROLLBACK")
    finally:
        conn.close()


async def setup_pair(daemon: DaemonProcess) -> None:
    for name in ("ana", "ben"):
        assert daemon.cli("spawn", name).returncode == 0
    await drain(daemon.socket_of("ben"))


async def test_readers_in_open_transactions_never_block_sends_or_fail(
    daemon: DaemonProcess,
) -> None:
    await setup_pair(daemon)
    db = daemon.root / "state" / "broker.sqlite"
    stop = threading.Event()
    errors: list[BaseException] = []
    reads = [0]

    def reader() -> None:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1)
        try:
            while not stop.is_set():
                # a long read transaction pins a WAL snapshot while the daemon commits
                conn.execute("BEGIN")
                for _ in range(20):
                    conn.execute("SELECT count(*), max(id) FROM messages").fetchone()
                    reads[0] += 1
                conn.execute("COMMIT")
        except BaseException as exc:
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        clients = [await Client.open(daemon.socket_of("ana")) for _ in range(4)]
        sent: dict[int, str] = {}

        async def burst(client: Client, worker: int) -> None:
            for n in range(150):
                body = f"w{worker}-{n}"
                reply = await client.call("send", to="ben", body=body)
                assert reply["kind"] == "ok", reply
                sent[reply["ids"][0]] = body

        await asyncio.wait_for(asyncio.gather(*(burst(c, i) for i, c in enumerate(clients))), 60)
        for client in clients:
            await client.close()
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert errors == [], f"a reader failed next to the daemon: {errors[:3]}"
    assert reads[0] > 0
    stored = dict(query(db, "SELECT id, body FROM messages WHERE sender = 'ana'"))
    assert stored == sent


async def test_a_short_foreign_write_lock_only_delays_sends(daemon: DaemonProcess) -> None:
    await setup_pair(daemon)
    db = daemon.root / "state" / "broker.sqlite"
    locked = threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(db, 1.0, locked))
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, 10)
        started = time.monotonic()
        replies = await asyncio.gather(*(call_on_new(daemon, n) for n in range(6)))
        waited = time.monotonic() - started
    finally:
        holder.join(30)
    assert all(r["kind"] == "ok" for r in replies), replies
    assert waited < BUSY_TIMEOUT, f"sends waited {waited:.1f} s behind a 1 s lock"
    bodies = {b for (b,) in query(db, "SELECT body FROM messages WHERE sender = 'ana'")}
    assert len(bodies) == 6


async def call_on_new(daemon: DaemonProcess, n: int) -> dict[str, Any]:
    client = await Client.open(daemon.socket_of("ana"))
    try:
        return await client.call("send", to="ben", body=f"other connection {n}")
    finally:
        await client.close()


async def test_a_write_lock_held_past_the_timeout_is_refused_clearly_and_reads_go_on(
    daemon: DaemonProcess,
) -> None:
    await setup_pair(daemon)
    db = daemon.root / "state" / "broker.sqlite"
    locked = threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(db, BUSY_TIMEOUT + 2.0, locked))
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, 10)
        ana = await Client.open(daemon.socket_of("ana"))
        reader = await Client.open(daemon.socket_of("ben"))
        pending = asyncio.create_task(ana.call("send", to="ben", body="behind a stuck lock"))
        # reads answer while the writer waits on the lock: well before the busy timeout
        # (a generous bound, so a loaded CI machine does not make this flaky)
        started = time.monotonic()
        status = await reader.call("status")
        assert status["kind"] == "status"
        assert not pending.done(), "the send should still be waiting on the lock"
        assert time.monotonic() - started < BUSY_TIMEOUT / 2, "a read waited on the lock"
        refused = await asyncio.wait_for(pending, BUSY_TIMEOUT + 10)
        assert refused["kind"] == "err", refused
        assert "database is locked" in refused["message"], refused
        assert "nothing was saved" in refused["message"], refused
    finally:
        holder.join(30)
    # released: the same connection sends again, no restart
    again = await ana.call("send", to="ben", body="after the lock")
    assert again["kind"] == "ok", again
    await ana.close()
    await reader.close()
    bodies = [b for (b,) in query(db, "SELECT body FROM messages WHERE sender = 'ana'")]
    assert bodies == ["after the lock"]
    assert daemon.proc is not None
    assert daemon.proc.poll() is None

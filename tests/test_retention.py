"""Retention deletes exactly what SPEC §13 says, and nothing else."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hivetest import DaemonProcess, call, make_settings, running_hive
from hyperhive import events_worker, retention
from hyperhive.retention import events_vacuum


async def test_broker_retention_deletes_only_old_acked_messages(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        await call(hive.settings.host_socket, "spawn", name="alice")
        now = int(time.time())
        old = now - 31 * 86400
        cases = {
            "old acked": (old, old, old),
            "old delivered unacked": (old, old, None),
            "old undelivered": (old, None, None),
            "new acked": (now - 86400, now, now),
        }
        conn = sqlite3.connect(hive.settings.broker_db)
        conn.execute("DELETE FROM messages")
        for body, (sent, delivered, acked) in cases.items():
            conn.execute(
                "INSERT INTO messages (sender, recipient, body, sent_at, delivered_at, acked_at)"
                " VALUES ('operator', 'alice', ?, ?, ?, ?)",
                (body, sent, delivered, acked),
            )
        conn.commit()
        conn.close()
        deleted = await hive.broker.delete_old(hive.settings.retention_days)
        assert deleted == 1
        conn = sqlite3.connect(hive.settings.broker_db)
        left = sorted(b for (b,) in conn.execute("SELECT body FROM messages"))
        conn.close()
        assert left == ["new acked", "old delivered unacked", "old undelivered"]


async def test_message_ids_are_never_handed_out_twice_after_retention(tmp_path: Path) -> None:
    """A hive idle for a month: every message is old and acked. Retention must not free the
    newest id, or the next message would reuse an id agents may still cite ("#12")."""
    async with running_hive(tmp_path) as hive:
        await call(hive.settings.host_socket, "spawn", name="alice")
        sent = [
            (await call(hive.settings.host_socket, "send", to="alice", body=f"m{i}"))["ids"][0]
            for i in range(3)
        ]
        old = int(time.time()) - 31 * 86400
        conn = sqlite3.connect(hive.settings.broker_db)
        conn.execute("UPDATE messages SET sent_at = ?, delivered_at = ?, acked_at = ?", (old,) * 3)
        conn.commit()
        conn.close()
        assert await hive.broker.delete_old(hive.settings.retention_days) > 0
        fresh = (await call(hive.settings.host_socket, "send", to="alice", body="new"))["ids"][0]
        assert fresh > max(sent)


def make_events_db(path: Path, timestamps: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, ts REAL NOT NULL, kind TEXT NOT NULL,"
        " payload_json TEXT NOT NULL)"
    )
    conn.executemany(
        "INSERT INTO events (ts, kind, payload_json) VALUES (?, 'stream', '{}')",
        [(ts,) for ts in timestamps],
    )
    conn.commit()
    conn.close()


def ids(path: Path) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT id FROM events ORDER BY id")]
    finally:
        conn.close()


async def test_events_vacuum_drops_old_rows_then_keeps_newest_2000(tmp_path: Path) -> None:
    # no running daemon: its own first sweep would race this one
    settings = make_settings(tmp_path)
    now = time.time()
    agents = settings.state_dir / "agents"
    # alice: 10 rows older than 7 days, then 2500 recent ones
    make_events_db(
        agents / "alice/state/hyperhive-events.sqlite",
        [now - 8 * 86400] * 10 + [now - 60] * 2500,
    )
    # bob: 5 old, 100 recent: only the old go
    make_events_db(
        agents / "bob/state/hyperhive-events.sqlite", [now - 8 * 86400] * 5 + [now] * 100
    )
    # carol: a broken file must not stop the sweep
    broken = agents / "carol/state/hyperhive-events.sqlite"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a database")
    deleted = await events_vacuum(settings)
    assert deleted == 10 + 500 + 5
    assert ids(agents / "alice/state/hyperhive-events.sqlite") == list(range(511, 2511))
    assert ids(agents / "bob/state/hyperhive-events.sqlite") == list(range(6, 106))
    assert broken.read_bytes() == b"not a database"


# A trigger that never ends: a recursive CTE without a bound, run on every DELETE.
ENDLESS_TRIGGER = (
    "CREATE TRIGGER pin BEFORE DELETE ON events BEGIN"
    " SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
    " SELECT x FROM c); END"
)


def hostile_events_db(path: Path, now: float, *statements: str) -> None:
    make_events_db(path, [now - 8 * 86400] * 3 + [now] * 3)
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def test_a_looping_trigger_in_one_events_db_pins_neither_the_sweep_nor_the_shutdown(
    tmp_path: Path,
) -> None:
    now = time.time()
    agents = tmp_path / "state" / "agents"
    # "aa-" sorts first: on the old code the sweep never gets past it
    hostile_events_db(agents / "aa-mal/state/hyperhive-events.sqlite", now, ENDLESS_TRIGGER)
    make_events_db(agents / "bob/state/hyperhive-events.sqlite", [now - 8 * 86400] * 4 + [now])
    daemon = DaemonProcess(tmp_path, HYPERHIVE_SWEEP_INTERVAL_SECONDS="0.5")
    daemon.start()
    try:
        wait_for(lambda: ids(agents / "bob/state/hyperhive-events.sqlite") == [5], 20, "bob swept")
        assert daemon.proc is not None
        daemon.proc.terminate()
        try:
            code = daemon.proc.wait(15)
        except subprocess.TimeoutExpired:
            pytest.fail("hive-c0re ignored SIGTERM while sweeping a hostile events db")
        assert code == 0, daemon.log.read_text()
    finally:
        daemon.stop()
    assert "aa-mal" in daemon.log.read_text()  # skipped with a reason, by name
    assert ids(agents / "aa-mal/state/hyperhive-events.sqlite") == list(range(1, 7))


def wait_for(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {within} s")
        time.sleep(0.05)


@pytest.mark.parametrize(
    "statement",
    [
        ENDLESS_TRIGGER,
        "CREATE VIEW v AS SELECT * FROM events",
        "CREATE TRIGGER t AFTER INSERT ON events BEGIN SELECT 1; END",
    ],
)
async def test_an_events_db_with_a_trigger_or_view_is_skipped_with_a_reason(
    tmp_path: Path, statement: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path)
    now = time.time()
    agents = settings.state_dir / "agents"
    hostile_events_db(agents / "mallory/state/hyperhive-events.sqlite", now, statement)
    make_events_db(agents / "bob/state/hyperhive-events.sqlite", [now - 8 * 86400, now])
    assert await events_vacuum(settings) == 1
    assert ids(agents / "mallory/state/hyperhive-events.sqlite") == list(range(1, 7))
    assert any(
        "mallory" in r.getMessage() and ("trigger" in r.getMessage() or "view" in r.getMessage())
        for r in caplog.records
    )


async def test_the_sweep_follows_no_symlink_and_opens_no_fifo(tmp_path: Path) -> None:
    # no running daemon: its own first sweep would race this one
    settings = make_settings(tmp_path)
    now = time.time()
    agents = settings.state_dir / "agents"
    outside = tmp_path / "host-file.sqlite"
    make_events_db(outside, [now - 8 * 86400] * 2 + [now])
    before = outside.read_bytes()
    # the db itself a symlink to a host database
    (agents / "link/state").mkdir(parents=True)
    (agents / "link/state/hyperhive-events.sqlite").symlink_to(outside)
    # its -wal / -journal a symlink to a host file (sqlite would write it)
    victim = tmp_path / "victim"
    victim.write_text("host data\n")
    for agent, suffix in (("sidewal", "-wal"), ("sidejnl", "-journal")):
        db = agents / f"{agent}/state/hyperhive-events.sqlite"
        make_events_db(db, [now - 8 * 86400, now])
        if suffix == "-wal":  # the harness's own db is in WAL mode
            conn = sqlite3.connect(db)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.close()
        db.with_name(db.name + suffix).symlink_to(victim)
    # the state dir itself a symlink to another directory with an events db
    (agents / "swapped").mkdir()
    (agents / "swapped/state").symlink_to(outside.parent)
    # a FIFO: opening it would block forever
    (agents / "fifo/state").mkdir(parents=True)
    os.mkfifo(agents / "fifo/state/hyperhive-events.sqlite")
    make_events_db(agents / "zed/state/hyperhive-events.sqlite", [now - 8 * 86400, now])
    deleted = await asyncio.wait_for(events_vacuum(settings), 60)
    assert ids(agents / "zed/state/hyperhive-events.sqlite") == [2]
    assert outside.read_bytes() == before
    assert victim.read_text() == "host data\n"
    assert deleted == 1


def test_the_worker_stops_a_trim_that_outlives_its_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    db = tmp_path / "hyperhive-events.sqlite"
    make_events_db(db, [now - 8 * 86400] * 50_000)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(events_worker.Refused, match="took longer than"):
        events_worker.trim(7, 2000, now, budget=0.0)
    assert len(ids(db)) == 50_000  # rolled back, nothing half-deleted
    assert events_worker.trim(7, 2000, now, budget=30) == 50_000


def worker_children() -> list[int]:
    """Pids of events workers that are children of this test process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"hyperhive.events_worker" in cmdline:
            found.append(int(entry.name))
    return found


async def test_a_worker_that_outlives_its_budget_is_killed_and_the_sweep_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(retention, "KILL_GRACE_SECONDS", 0.0)
    # far less than the interpreter needs to start: every worker outlives it
    settings = make_settings(tmp_path, events_vacuum_seconds=0.001)
    now = time.time()
    make_events_db(settings.state_dir / "agents/bob/state/hyperhive-events.sqlite", [now])
    assert await asyncio.wait_for(events_vacuum(settings), 30) == 0
    assert any("outlived" in r.getMessage() for r in caplog.records)
    assert worker_children() == []


async def test_a_shutdown_kills_the_running_worker_at_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, events_vacuum_seconds=600)
    now = time.time()
    db = settings.state_dir / "agents/bob/state/hyperhive-events.sqlite"
    make_events_db(db, [now - 8 * 86400, now])
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # the worker waits on the lock (busy timeout)
    try:
        sweep = asyncio.create_task(events_vacuum(settings))
        deadline = time.monotonic() + 30
        while not worker_children():
            assert time.monotonic() < deadline, "no worker started"
            await asyncio.sleep(0.01)
        sweep.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(sweep, 5)
        assert worker_children() == []
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert ids(db) == [1, 2]


async def test_the_worker_trims_without_any_capability(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the worker confines itself only when the daemon is root")
    settings = make_settings(tmp_path)
    now = time.time()
    db = settings.state_dir / "agents/bob/state/hyperhive-events.sqlite"
    make_events_db(db, [now - 8 * 86400, now])
    fd = os.open(db.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        result = await retention.vacuum_agent(settings, fd, now)
    finally:
        os.close(fd)
    assert result == {"cap_eff": "0000000000000000", "deleted": 1}
    assert ids(db) == [2]

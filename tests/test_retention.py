"""Retention deletes exactly what SPEC §13 says, and nothing else."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from hivetest import call, running_hive
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
    async with running_hive(tmp_path) as hive:
        now = time.time()
        agents = hive.settings.state_dir / "agents"
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
        deleted = events_vacuum(hive.settings)
        assert deleted == 10 + 500 + 5
        assert ids(agents / "alice/state/hyperhive-events.sqlite") == list(range(511, 2511))
        assert ids(agents / "bob/state/hyperhive-events.sqlite") == list(range(6, 106))
        assert broken.read_bytes() == b"not a database"

"""The writer thread: group commit, isolation of failing jobs, forward-only migrations."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from hyperhive.db.connection import Database, migrate
from hyperhive.db.schema import BROKER_MIGRATIONS

SCHEMA = [(1, "t", "CREATE TABLE t (v INTEGER NOT NULL UNIQUE);")]


async def test_a_failing_write_does_not_undo_its_batch_neighbours(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.sqlite", SCHEMA)

    def insert(v: int) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO t (v) VALUES (?)", (v,))

        return job  # type: ignore[return-value]

    results = await asyncio.gather(
        *(db.write(insert(v)) for v in [1, 2, 2, 3]),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    assert [isinstance(r, sqlite3.IntegrityError) for r in results] == [False, False, True, False]
    assert db.read(lambda c: [r[0] for r in c.execute("SELECT v FROM t ORDER BY v")]) == [1, 2, 3]
    await db.close()


async def test_migrations_are_recorded_and_not_rerun(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    db = Database(path, BROKER_MIGRATIONS)
    await db.close()
    conn = sqlite3.connect(path)
    recorded = conn.execute("SELECT number, name FROM schema_migrations").fetchall()
    assert recorded == [(1, "initial"), (2, "approvals_rollback_sha")]
    assert migrate(conn, BROKER_MIGRATIONS) == 2
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_a_migration_older_than_the_applied_version_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.sqlite", isolation_level=None)
    migrate(conn, [(2, "two", "CREATE TABLE b (x);")])
    with pytest.raises(RuntimeError, match="older than applied"):
        migrate(conn, [(1, "one", "CREATE TABLE a (x);"), (2, "two", "CREATE TABLE b (x);")])
    conn.close()


async def test_writes_after_close_are_refused_clearly(tmp_path: Path) -> None:
    db = Database(tmp_path / "c.sqlite", SCHEMA)
    await db.close()
    with pytest.raises(Exception, match="closed"):
        await db.write(lambda c: None)

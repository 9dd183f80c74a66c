"""The PostgreSQL store against a real server: the writer's guarantees, migrations by two
hosts at once, and the configuration it refuses."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from hivetest.pg import PgServer
from hyperhive.db import postgres
from hyperhive.db.connection import Tx
from hyperhive.db.open import open_broker_db, read_password_file
from hyperhive.db.postgres import PostgresDatabase, describe
from hyperhive.db.schema import POSTGRES_MIGRATIONS
from hyperhive.errors import InvalidRequest, Unavailable
from hyperhive.settings import Settings

SCHEMA = [(1, "t", "CREATE TABLE t (v INTEGER NOT NULL UNIQUE);")]


def insert(v: int) -> Callable[[Tx], int]:
    def job(conn: Tx) -> int:
        conn.execute("INSERT INTO t (v) VALUES (?)", (v,))
        conn.notify("hive_test", str(v))
        return v

    return job


async def test_a_failing_write_does_not_undo_its_batch_neighbours(pg_server: PgServer) -> None:
    db = PostgresDatabase(pg_server.database(), SCHEMA, password=pg_server.password)
    heard: list[str] = []
    db.subscribe("hive_test", lambda payload, mine: heard.append(payload))
    await db.start()
    results = await asyncio.gather(
        *(db.write(insert(v)) for v in [1, 2, 2, 3]), return_exceptions=True
    )
    assert [type(r).__name__ for r in results] == ["int", "int", "UniqueViolation", "int"]
    assert db.read(lambda c: [r[0] for r in c.execute("SELECT v FROM t ORDER BY v")]) == [1, 2, 3]
    # the failed job's notification went with its rollback; the others' with the commit
    await asyncio.sleep(0.3)
    assert sorted(heard) == ["1", "2", "3"]
    await db.close()


async def test_a_deadlock_between_two_hosts_writers_fails_no_write(pg_server: PgServer) -> None:
    """Two hosts' writers lock the same rows in the opposite order: the server breaks the
    deadlock by rolling one batch back. That batch ran again; before, every write in it
    failed with "could not commit ... retry once the database is back", whatever it was."""
    url = pg_server.database()
    a = PostgresDatabase(url, SCHEMA, password=pg_server.password)
    b = PostgresDatabase(url, SCHEMA, password=pg_server.password)
    await a.write(insert(1))
    await a.write(insert(2))
    took = {"a": threading.Event(), "b": threading.Event()}

    def crossing(me: str, other: str, first: int, then: int) -> Callable[[Tx], str]:
        def job(conn: Tx) -> str:
            conn.execute("UPDATE t SET v = v WHERE v = ?", (first,))
            took[me].set()
            took[other].wait(10)
            conn.execute("UPDATE t SET v = v WHERE v = ?", (then,))
            return me

        return job

    done = await asyncio.gather(
        a.write(crossing("a", "b", 1, 2)), b.write(crossing("b", "a", 2, 1)), return_exceptions=True
    )
    assert done == ["a", "b"]
    await a.close()
    await b.close()


async def test_a_flood_of_notifications_while_the_loop_is_busy_stays_bounded(
    pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another host's flood arrives while this host's event loop is busy: the listener
    thread queued one loop callback per notification without bound. Past the bound the
    backlog is dropped and the loop re-reads its state instead (the resync of a reconnect)."""
    monkeypatch.setattr(postgres, "QUEUED_NOTES", 50, raising=False)
    url = pg_server.database()
    db = PostgresDatabase(url, SCHEMA, password=pg_server.password)
    heard: list[str] = []
    resyncs: list[int] = []
    db.subscribe("hive_test", lambda payload, mine: heard.append(payload))
    db.on_resync(lambda: resyncs.append(len(heard)))
    await db.start()
    await asyncio.sleep(0.1)
    resyncs.clear()
    with psycopg.connect(url, password=pg_server.password, autocommit=True) as other:
        # the loop is blocked (a synchronous wait) while 200 notifications arrive
        for i in range(200):
            other.execute("SELECT pg_notify('hive_test', %s)", (str(i),))
        deadline = time.monotonic() + 10
        while len(getattr(db, "_notes", ())) < 50 and time.monotonic() < deadline:
            if getattr(db, "_notes_lost", False):
                break
            time.sleep(0.01)  # noqa: ASYNC251 - the loop is blocked on purpose
    await asyncio.sleep(0.3)
    assert resyncs == [0], "the dropped backlog was not replaced by a resync"
    assert 0 < len(heard) <= 50
    assert heard[-1] == "199"  # the newest are kept
    await db.close()


async def test_two_hosts_migrating_one_database_at_once_apply_each_migration_once(
    pg_server: PgServer,
) -> None:
    url = pg_server.database()
    dbs: list[PostgresDatabase] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            dbs.append(PostgresDatabase(url, POSTGRES_MIGRATIONS, password=pg_server.password))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = dbs[0].read(lambda c: [tuple(r) for r in c.execute(
        "SELECT number, name FROM schema_migrations ORDER BY number"
    )])  # fmt: skip
    assert rows == [(n, name) for n, name, _ in POSTGRES_MIGRATIONS]
    for db in dbs:
        await db.close()


async def test_writes_while_the_server_is_down_fail_clearly_then_work_again(
    tmp_path: Path,
) -> None:
    server = PgServer().start()
    try:
        db = PostgresDatabase(server.database(), SCHEMA, password=server.password)
        assert await db.write(insert(1)) == 1
        await asyncio.to_thread(server.stop_server, "immediate")
        with pytest.raises(Unavailable, match="retry once the database is back") as failed:
            await db.write(insert(2))
        assert server.password not in str(failed.value)
        with pytest.raises(Unavailable):
            db.read(lambda c: c.execute("SELECT 1").fetchall())
        await asyncio.to_thread(server.start_server)
        assert await db.write(insert(3)) == 3
        await asyncio.sleep(1.1)  # the reader's retry pause
        assert db.read(lambda c: [r[0] for r in c.execute("SELECT v FROM t ORDER BY v")]) == [1, 3]
        await db.close()
    finally:
        server.stop()


def test_a_url_with_a_password_is_refused_without_echoing_it(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path, database_url="postgresql://hive:hunter2@127.0.0.1:1/hive"
    )
    with pytest.raises(InvalidRequest, match="PASSWORD_FILE") as refused:
        open_broker_db(settings)
    assert "hunter2" not in refused.value.message
    assert describe("postgresql://hive:hunter2@db:5433/x") == "hive@db:5433/x"


def test_a_password_file_others_can_read_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    with pytest.raises(InvalidRequest, match="chmod 600") as refused:
        read_password_file(secret)
    assert "s3cret" not in refused.value.message
    secret.chmod(0o600)
    assert read_password_file(secret) == "s3cret"
    link = tmp_path / "link"
    os.symlink(secret, link)
    with pytest.raises(InvalidRequest, match="cannot open"):
        read_password_file(link)


def test_an_unreachable_server_is_a_clear_error_at_start(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="cannot be reached") as failed:
        PostgresDatabase("postgresql://hive@127.0.0.1:9/hive", SCHEMA, password="pw")
    assert "password=" not in failed.value.message

"""A sqlite database with one writer thread that commits concurrent writes together.

Why not aiosqlite: every write here must be committed before the caller is answered, and
one commit per message caps throughput at the disk's commit rate. The writer thread takes
every job that is queued when it wakes, runs each in its own SAVEPOINT (so one failing job
does not undo the others), commits once, and only then resolves the callers' futures —
group commit. Reads use a separate connection on the event loop thread: in WAL mode readers
never wait for the writer, and the reads we do are small, indexed queries.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from hyperhive.errors import Unavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

Migration = tuple[int, str, str]
"""(number, name, SQL script). Forward-only; numbers start at 1 and never change."""

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # NORMAL in WAL mode: a commit survives the process being killed at any instant (the
    # WAL is written before we answer); only an OS crash or power loss can lose the last
    # commits. That is the durability SPEC §5 asks for ("daemon killed at any instant").
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


@dataclass
class _Job(Generic[T]):
    fn: Callable[[sqlite3.Connection], T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop


def _resolve(future: asyncio.Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[T], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def connect(path: Path) -> sqlite3.Connection:
    """Open `path` with the house pragmas (WAL, NORMAL sync, busy timeout)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    for pragma in PRAGMAS:
        conn.execute(pragma)
    return conn


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> int:
    """Apply the migrations not yet recorded in `schema_migrations`; return the version."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (number INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT number FROM schema_migrations")}
    version = max(done, default=0)
    for number, name, script in sorted(migrations):
        if number in done:
            continue
        if number < version:
            raise RuntimeError(f"migration {number} ({name}) is older than applied {version}")
        # executescript commits any open transaction first; wrap each migration explicitly.
        conn.executescript(
            f"BEGIN IMMEDIATE;\n{script}\n"
            f"INSERT INTO schema_migrations VALUES ({number}, '{name}', unixepoch());\nCOMMIT;"
        )
        logger.info("applied migration %d %s", number, name)
        version = number
    return version


class Database:
    """One sqlite file: a group-committing writer thread and a loop-side reader."""

    def __init__(self, path: Path, migrations: Sequence[Migration] = ()) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = connect(path)
        migrate(writer, migrations)
        self._writer = writer
        self._reader = connect(path)
        self._jobs: queue.SimpleQueue[_Job[object] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"sqlite-writer:{path.name}")
        self._thread.daemon = True
        self._thread.start()
        self._closed = False

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read-only query on the reader connection, synchronously."""
        return fn(self._reader)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` inside a transaction on the writer thread; return once committed."""
        if self._closed:
            raise Unavailable("the database is closed (the daemon is shutting down)")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(fn, future, loop))  # type: ignore[arg-type]
        return await future

    def _run(self) -> None:
        conn = self._writer
        while True:
            job = self._jobs.get()
            if job is None:
                return
            batch = [job]
            stop = False
            while len(batch) < 512:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._commit_batch(conn, batch)
            if stop:
                return

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[_Job[object]]) -> None:
        results: list[tuple[_Job[object], object, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                conn.execute("SAVEPOINT job")
                try:
                    value = job.fn(conn)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's future
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    results.append((job, None, exc))
                else:
                    conn.execute("RELEASE job")
                    results.append((job, value, None))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            logger.error("commit of %d writes failed: %s", len(batch), exc)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = Unavailable(f"the database could not commit ({exc}); nothing was saved")
            results = [(job, None, error) for job in batch]
        for job, value, failure in results:
            try:
                if failure is None:
                    job.loop.call_soon_threadsafe(_resolve, job.future, value)
                else:
                    job.loop.call_soon_threadsafe(_fail, job.future, failure)
            except RuntimeError:
                pass  # the caller's loop is closed; nobody is waiting

    async def close(self) -> None:
        """Finish queued writes, then close both connections."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)
        self._writer.close()
        self._reader.close()

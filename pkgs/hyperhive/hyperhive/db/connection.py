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
import contextlib
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


_Outcome = tuple[_Job[object], object, BaseException | None]


def _settle(outcomes: list[_Outcome]) -> None:
    """Resolve a committed batch's futures (runs on the event loop, once per batch)."""
    for job, value, failure in outcomes:
        if job.future.done():
            continue
        if failure is None:
            job.future.set_result(value)
        else:
            job.future.set_exception(failure)


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
        self._jobs: queue.SimpleQueue[
            tuple[asyncio.AbstractEventLoop, list[_Job[object]]] | None
        ] = queue.SimpleQueue()
        self._outbox: list[_Job[object]] = []
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
        # Jobs queued during one loop iteration cross to the writer thread together: one
        # hand-off and one wake-up back per batch instead of per write.
        if not self._outbox:
            loop.call_soon(self._hand_over, loop)
        self._outbox.append(_Job(fn, future))  # type: ignore[arg-type]
        return await future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._outbox = self._outbox, []
        self._jobs.put((loop, batch))

    def _run(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            loop, batch = item
            stop = False
            while len(batch) < 1024:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                if more[0] is not loop:
                    self._finish(loop, batch)
                    loop = more[0]
                    batch = []
                batch = batch + more[1]
            self._finish(loop, batch)
            if stop:
                return

    def _finish(self, loop: asyncio.AbstractEventLoop, batch: list[_Job[object]]) -> None:
        outcomes = self._commit_batch(self._writer, batch)
        with contextlib.suppress(RuntimeError):  # the caller's loop closed: nobody waits
            loop.call_soon_threadsafe(_settle, outcomes)

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[_Job[object]]) -> list[_Outcome]:
        results: list[_Outcome] = []
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
            error = Unavailable(
                f"the database could not commit ({exc}); nothing was saved — if the disk is"
                f" full, free space under {self.path.parent} and retry"
            )
            results = [(job, None, error) for job in batch]
        return results

    async def close(self) -> None:
        """Finish queued writes, then close both connections."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)
        self._writer.close()
        self._reader.close()

"""The broker's store: a group-committing writer over sqlite (embedded) or PostgreSQL.

Every write is a job `fn(tx)` run on one writer thread; the caller is answered only after
the transaction that ran it committed. Jobs that arrive while a batch is committing form
the next batch: each job runs in its own SAVEPOINT (one failing job does not undo the
others) and the batch commits once — group commit. The gain is one thread hop and one
commit per batch instead of per write: at sqlite's `synchronous=NORMAL` a commit does not
fsync, so the hops dominate; on PostgreSQL (`synchronous_commit=on`) each commit is a WAL
flush, so batching is what keeps durable throughput above the disk's commit rate.

Reads run on the event loop thread through a second connection: small indexed queries;
in WAL mode sqlite readers never wait for the writer, and PostgreSQL readers see every
committed write. The SQL is written once for both engines: `?` placeholders, and the
few expressions that differ live in `Dialect` (`tx.dialect`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from hyperhive.errors import Unavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

Migration = tuple[int, str, str]
"""(number, name, SQL script). Forward-only; numbers start at 1 and never change."""

CHANGED = "hive_changed"
"""Notification channel: a topic (`approvals`, `questions`) whose rows changed, so other
hosts' dashboards redraw it."""
AGENTS = "hive_agents"
"""Notification channel: the name of an agent whose row changed (other hosts re-read it)."""

MAX_BATCH = 1024
"""Jobs committed together at most; the rest wait for the next batch."""

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # NORMAL in WAL mode: a commit survives the process being killed at any instant (the
    # WAL is written before we answer); only an OS crash or power loss can lose the last
    # commits. That is the durability SPEC §5 asks for ("daemon killed at any instant").
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


@dataclass(frozen=True)
class Dialect:
    """What differs between the two engines' SQL. Everything else is written once."""

    name: str
    begin: str
    """Starts the writer's transaction (sqlite takes the write lock at once)."""
    body_bytes: str
    """A message body's stored size in bytes (UTF-8)."""
    json_text: str
    """`{0}` is a text column holding JSON, `{1}` a key: that key's text value, or NULL
    (also NULL when the column is not valid JSON)."""
    text_in_json_array: str
    """`{0}` IN the JSON array of strings given as the next parameter."""


SQLITE = Dialect(
    name="sqlite",
    begin="BEGIN IMMEDIATE",
    body_bytes="length(CAST(body AS BLOB))",
    json_text="(CASE WHEN json_valid({0}) THEN json_extract({0}, '$.{1}') END)",
    text_in_json_array="{0} IN (SELECT value FROM json_each(?))",
)

POSTGRES = Dialect(
    name="postgresql",
    begin="BEGIN",
    body_bytes="octet_length(body)",
    json_text="hive_json_text({0}, '{1}')",
    text_in_json_array="{0} IN (SELECT jsonb_array_elements_text(?::jsonb))",
)


class Cursor(Protocol):
    """What the stores use of a cursor (sqlite3.Cursor and the PostgreSQL adapter's)."""

    @property
    def rowcount(self) -> int: ...

    def fetchall(self) -> list[Any]: ...

    def fetchone(self) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


class Tx(Protocol):
    """A connection inside a job or a read: `execute` with `?` placeholders. Rows index
    by position and by column name."""

    dialect: Dialect

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def notify(self, channel: str, payload: str) -> None:
        """Tell every host's daemon `payload` on `channel` once this transaction commits
        (PostgreSQL's NOTIFY). On sqlite there is one host, which acts after the commit
        itself: nothing to send."""

    @property
    def queued(self) -> int:
        """Notifications queued so far in this transaction."""

    def discard_notifications(self, keep: int) -> None:
        """A job rolled back: drop what it queued (all but the first `keep`)."""


class SqliteTx(sqlite3.Connection):
    """A sqlite connection that says which dialect it speaks."""

    dialect = SQLITE

    def notify(self, channel: str, payload: str) -> None:
        """Nothing to send: one host, which wakes its own recvs after the commit."""

    @property
    def queued(self) -> int:
        return 0

    def discard_notifications(self, keep: int) -> None:
        """Nothing was queued."""


@dataclass
class _Job:
    fn: Callable[[Any], object]
    future: asyncio.Future[Any]


_Outcome = tuple[_Job, object, BaseException | None]


def _settle(outcomes: list[_Outcome]) -> None:
    """Resolve a finished batch's futures (runs on the event loop, once per batch)."""
    for job, value, failure in outcomes:
        if job.future.done():
            continue
        if failure is None:
            job.future.set_result(value)
        else:
            job.future.set_exception(failure)


class Database:
    """One store: a group-committing writer thread and a loop-side reader.

    Subclasses open the connections and say how a batch fails; the batching, the order
    of commits and the shutdown are here. One event loop uses a Database at a time.
    """

    dialect: Dialect = SQLITE
    shared = False
    """Whether other hosts' daemons use this store too (PostgreSQL): then each row of an
    agent or approval names its host, and only that host acts on it."""
    location: str = ""
    """Where the data lives, for messages (a path or host:port/db, never a password)."""

    def __init__(self) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"{self.dialect.name}-writer"
        )
        self._outbox: list[_Job] = []
        self._in_flight: asyncio.Future[list[_Outcome]] | None = None
        self._closed = False

    # -- subclass hooks ---------------------------------------------------------------------

    def _commit_batch(self, batch: list[_Job]) -> list[_Outcome]:
        """Run `batch` in one transaction on the writer thread; one outcome per job."""
        raise NotImplementedError

    def read(self, fn: Callable[[Tx], T]) -> T:
        """Run a read-only query on the reader connection, synchronously."""
        raise NotImplementedError

    def _close_connections(self) -> None:
        raise NotImplementedError

    def subscribe(self, channel: str, handler: Callable[[str, bool], None]) -> None:
        """Hear other hosts' notifications on `channel` (PostgreSQL). One host (sqlite):
        nobody else writes, so there is nothing to hear."""

    def on_resync(self, callback: Callable[[], None]) -> None:
        """Called when notifications may have been missed (PostgreSQL). sqlite: never."""

    async def start(self) -> None:
        """Start listening for other hosts (PostgreSQL). sqlite: nothing to start."""

    # -- writing -----------------------------------------------------------------------------

    async def write(self, fn: Callable[[Tx], T]) -> T:
        """Run `fn` inside a transaction on the writer thread; return once committed.

        Raises what `fn` raised (its savepoint rolled back, the batch still commits), or
        `Unavailable` when the transaction could not commit (nothing of it was saved) or
        the store is closed."""
        if self._closed:
            raise Unavailable("the database is closed (the daemon is shutting down)")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._outbox.append(_Job(fn, future))
        if self._in_flight is None and len(self._outbox) == 1:
            # Writes issued in this loop iteration go to the writer together.
            loop.call_soon(self._hand_over)
        return await future

    def _hand_over(self) -> None:
        if self._in_flight is not None or not self._outbox:
            return
        batch, self._outbox = self._outbox[:MAX_BATCH], self._outbox[MAX_BATCH:]
        loop = asyncio.get_running_loop()
        self._in_flight = loop.run_in_executor(self._executor, self._commit_batch, batch)
        self._in_flight.add_done_callback(partial(self._batch_done, batch))

    def _batch_done(self, batch: list[_Job], done: asyncio.Future[list[_Outcome]]) -> None:
        self._in_flight = None
        failure = None if done.cancelled() else done.exception()
        if done.cancelled() or failure is not None:
            logger.error("the database writer failed on a batch of %d: %r", len(batch), failure)
            error = Unavailable("the database writer failed; nothing of this write was saved")
            _settle([(job, None, error) for job in batch])
        else:
            _settle(done.result())
        # Everything that arrived while this batch committed is the next batch.
        self._hand_over()

    async def close(self) -> None:
        """Commit the writes already issued (including ones issued in this same loop
        iteration), then close the connections. Later writes raise `Unavailable`."""
        if self._closed:
            return
        self._closed = True
        while self._in_flight is not None or self._outbox:
            if self._in_flight is None:
                self._hand_over()
            if self._in_flight is not None:
                await asyncio.shield(self._in_flight)
                await asyncio.sleep(0)  # let _batch_done settle and hand over the rest
        self._executor.shutdown(wait=True)
        self._close_connections()


# -- sqlite -----------------------------------------------------------------------------------


def connect(path: Path) -> SqliteTx:
    """Open `path` with the house pragmas (WAL, NORMAL sync, busy timeout)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, factory=SqliteTx)
    conn.row_factory = sqlite3.Row
    for pragma in PRAGMAS:
        conn.execute(pragma)
    return conn


MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations"
    " (number INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
)


def to_apply(done: set[int], migrations: Sequence[Migration]) -> list[Migration]:
    """The migrations not in `done`, in order. RuntimeError if one is older than the newest
    applied (a database written by a newer hyperhive, or a renumbered migration)."""
    version = max(done, default=0)
    todo = [m for m in sorted(migrations) if m[0] not in done]
    for number, name, _ in todo:
        if number < version:
            raise RuntimeError(f"migration {number} ({name}) is older than applied {version}")
    return todo


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> int:
    """Apply the migrations not yet recorded in `schema_migrations`; return the version."""
    conn.execute(MIGRATIONS_TABLE)
    done = {row[0] for row in conn.execute("SELECT number FROM schema_migrations")}
    version = max(done, default=0)
    for number, name, script in to_apply(done, migrations):
        # executescript commits any open transaction first; wrap each migration explicitly.
        conn.executescript(
            f"BEGIN IMMEDIATE;\n{script}\n"
            f"INSERT INTO schema_migrations VALUES ({number}, '{name}', unixepoch());\nCOMMIT;"
        )
        logger.info("applied migration %d %s", number, name)
        version = number
    return version


class SqliteDatabase(Database):
    """One sqlite file (WAL): the embedded default for a hive on one host."""

    dialect = SQLITE

    def __init__(self, path: Path, migrations: Sequence[Migration] = ()) -> None:
        self.path = path
        self.location = str(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = connect(path)
        migrate(writer, migrations)
        self._writer = writer
        self._reader = connect(path)
        super().__init__()

    def read(self, fn: Callable[[Tx], T]) -> T:
        return fn(self._reader)

    def _commit_batch(self, batch: list[_Job]) -> list[_Outcome]:
        conn = self._writer
        results: list[_Outcome] = []
        try:
            conn.execute(SQLITE.begin)
            results = _run_jobs(conn, batch)
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

    def _close_connections(self) -> None:
        self._writer.close()
        self._reader.close()


def _run_jobs(conn: Tx, batch: list[_Job]) -> list[_Outcome]:
    """Each job in its own savepoint of the open transaction. A job's own exception is
    its outcome; an engine error that breaks the transaction propagates."""
    results: list[_Outcome] = []
    for job in batch:
        conn.execute("SAVEPOINT job")
        mark = conn.queued
        try:
            value = job.fn(conn)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's future
            conn.discard_notifications(mark)
            conn.execute("ROLLBACK TO SAVEPOINT job")
            conn.execute("RELEASE SAVEPOINT job")
            results.append((job, None, exc))
        else:
            conn.execute("RELEASE SAVEPOINT job")
            results.append((job, value, None))
    return results

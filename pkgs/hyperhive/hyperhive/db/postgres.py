"""The broker's store on PostgreSQL: one database shared by every host of a hive.

psycopg 3 (imported here only, so a one-host hive needs no libpq). The writer runs the
same jobs as on sqlite, each in a savepoint of one transaction per batch; a job may queue
notifications (`tx.notify`), sent with `pg_notify` just before COMMIT so that they reach
the other hosts exactly when the rows they announce are visible. One more connection per
host LISTENs on a thread of its own and hands each notification to the event loop: a
parked recv on another host wakes without polling.

The connection string never carries the password (it comes from a file), and neither
`location` nor any error text here contains it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg.rows import RowMaker

from hyperhive.db.connection import (
    MIGRATIONS_TABLE,
    POSTGRES,
    Cursor,
    Database,
    Migration,
    T,
    Tx,
    _Job,
    _Outcome,
    _run_jobs,
    to_apply,
)
from hyperhive.errors import InDoubt, InvalidRequest, Unavailable

if TYPE_CHECKING:
    from psycopg._cursor_base import BaseCursor

logger = logging.getLogger(__name__)

CHANNEL_RE = re.compile(r"hive_[a-z]{1,20}")
MIGRATION_LOCK = 0x68697665  # "hive": pg_advisory_xact_lock key for migrations
NOTIFY_BYTES = 7900
"""PostgreSQL's NOTIFY payload limit is 8,000 bytes."""
QUEUED_NOTES = 100_000
"""Notifications waiting for the event loop at most (see `_queue_note`)."""
ROLLBACK_RETRIES = 3
"""A batch the server rolled back for a deadlock with another host's writer runs again."""
RECONNECT_SECONDS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
_ROLLED_BACK = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
_RECOVERABLE = (psycopg.pq.TransactionStatus.INTRANS, psycopg.pq.TransactionStatus.INERROR)


@functools.lru_cache(maxsize=512)
def _translate(sql: str) -> str:
    """`?` placeholders to psycopg's `%s` (a literal `%` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


@functools.lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]) -> type[tuple[Any, ...]]:
    index = {name: i for i, name in enumerate(names)}

    class Row(tuple[Any, ...]):
        """A row that indexes by position and by column name, like sqlite3.Row."""

        __slots__ = ()

        def __getitem__(self, key: Any) -> Any:
            if isinstance(key, str):
                return tuple.__getitem__(self, index[key])
            return tuple.__getitem__(self, key)

        def keys(self) -> list[str]:
            return list(names)

    return Row


def _rows(cursor: BaseCursor[Any, Any]) -> RowMaker[Any]:
    description = cursor.description
    if description is None:
        return tuple
    return _row_class(tuple(col.name for col in description))


class PgTx:
    """A psycopg connection that speaks the stores' SQL (`?` placeholders)."""

    dialect = POSTGRES

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._notifications: list[tuple[str, str]] = []

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        for value in parameters:
            if isinstance(value, str) and "\x00" in value:
                # PostgreSQL text cannot hold NUL; say so instead of "internal error".
                raise InvalidRequest(
                    "text with a NUL character (\\x00) cannot be stored in this hive's"
                    " PostgreSQL database: remove it and send again"
                )
        return self._conn.execute(_translate(sql), parameters)

    def notify(self, channel: str, payload: str) -> None:
        """Announce `payload` on `channel` to every host once this transaction commits."""
        if not CHANNEL_RE.fullmatch(channel) or len(payload.encode()) > NOTIFY_BYTES:
            raise ValueError(f"bad notification {channel!r} ({len(payload)} chars)")
        self._notifications.append((channel, payload))

    def flush_notifications(self) -> None:
        """Queue the notifications with the server (they are sent at COMMIT)."""
        pending, self._notifications = self._notifications, []
        for start in range(0, len(pending), 100):
            chunk = pending[start : start + 100]
            self._conn.execute(
                "SELECT " + ", ".join("pg_notify(%s, %s)" for _ in chunk),
                [value for pair in chunk for value in pair],
            )

    def discard_notifications(self, keep: int) -> None:
        """A job rolled back: forget what it queued."""
        del self._notifications[keep:]

    @property
    def queued(self) -> int:
        return len(self._notifications)


def describe(conninfo: str) -> str:
    """`user@host:port/dbname` of a connection string: for messages, never the password."""
    try:
        parts = pg_conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "(an unreadable database URL)"
    host = parts.get("host") or "local socket"
    port = parts.get("port") or "5432"
    return f"{parts.get('user') or '(default user)'}@{host}:{port}/{parts.get('dbname') or ''}"


def check_url(url: str) -> None:
    """Refuse a URL that carries a password (it would land in process listings, unit files
    and logs): the password comes from HYPERHIVE_DATABASE_PASSWORD_FILE."""
    try:
        parts = pg_conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ValueError(
            "HYPERHIVE_DATABASE_URL is not a PostgreSQL connection URL"
            f" (postgresql://user@host:port/dbname): {str(exc).splitlines()[0][:200]}"
        ) from None
    if parts.get("password"):
        raise ValueError(
            "HYPERHIVE_DATABASE_URL must not contain a password: put it in a root-only file"
            " and point HYPERHIVE_DATABASE_PASSWORD_FILE at it"
        )


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def pg_migrate(conn: psycopg.Connection[Any], migrations: Sequence[Migration]) -> int:
    """Apply the migrations not yet recorded, under an advisory lock (two hosts starting at
    once apply each migration once); return the version."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(MIGRATIONS_TABLE)
        done = {row[0] for row in conn.execute("SELECT number FROM schema_migrations")}
        version = max(done, default=0)
        for number, name, script in to_apply(done, migrations):
            conn.execute(script.encode())  # a script of several statements, no parameters
            conn.execute(
                "INSERT INTO schema_migrations VALUES (%s, %s, extract(epoch from now())::bigint)",
                (number, name),
            )
            logger.info("applied migration %d %s", number, name)
            version = number
    return version


class PostgresDatabase(Database):
    """The hive's store on a PostgreSQL server (`HYPERHIVE_DATABASE_URL`)."""

    dialect = POSTGRES
    shared = True

    def __init__(
        self,
        url: str,
        migrations: Sequence[Migration] = (),
        *,
        password: str | None = None,
        application_name: str = "hive-c0re",
        connect_timeout: int = 5,
    ) -> None:
        check_url(url)
        extra: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "application_name": application_name,
        }
        if password is not None:
            extra["password"] = password
        self._conninfo = pg_conninfo.make_conninfo(url, **extra)
        self.location = describe(self._conninfo)
        writer = self._connect()
        try:
            pg_migrate(writer, migrations)
        except BaseException:
            writer.close()
            raise
        self._writer: psycopg.Connection[Any] | None = writer
        self._writer_pid = writer.info.backend_pid
        self._reader: psycopg.Connection[Any] | None = self._connect()
        self._reader_retry_at = 0.0
        self._handlers: dict[str, list[Callable[[str, bool], None]]] = {}
        self._on_resync: list[Callable[[], None]] = []
        self._listener: threading.Thread | None = None
        self._stop_listening = threading.Event()
        self.listening = threading.Event()
        self._notes: list[tuple[str, str, int]] = []
        self._notes_lock = threading.Lock()
        self._notes_lost = False
        self._drain_pending = False
        super().__init__()

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.Connection.connect(self._conninfo, autocommit=True, row_factory=_rows)
        except psycopg.Error as exc:
            raise Unavailable(
                f"the database {self.location} cannot be reached ({_short(exc)}): check that"
                " PostgreSQL runs and HYPERHIVE_DATABASE_URL / _PASSWORD_FILE are right"
            ) from None

    # -- reads (event loop thread) -----------------------------------------------------------

    def read(self, fn: Callable[[Tx], T]) -> T:
        """Run a read on the reader connection. A connection the server dropped (it
        restarted) is replaced once at once; while the server is away, reads fail with
        `Unavailable` and a new connection is tried at most once a second."""
        for attempt in (1, 2):
            reader = self._reader
            if reader is None or reader.closed:
                if time.monotonic() < self._reader_retry_at:
                    raise Unavailable(f"the database {self.location} is not reachable; retrying")
                self._reader_retry_at = time.monotonic() + 1.0
                reader = self._reader = self._connect()
                attempt = 2  # a fresh connection that fails is not stale: do not retry
            try:
                return fn(PgTx(reader))
            except psycopg.OperationalError as exc:
                with contextlib.suppress(psycopg.Error):
                    reader.close()
                self._reader = None
                if attempt == 2:
                    raise Unavailable(
                        f"the database {self.location} went away during a read ({_short(exc)})"
                    ) from None
        raise AssertionError("unreachable")

    # -- writes (writer thread) --------------------------------------------------------------

    def _commit_batch(self, batch: list[_Job]) -> list[_Outcome]:
        committing = False
        try:
            for attempt in range(ROLLBACK_RETRIES + 1):
                if self._writer is None or self._writer.closed:
                    self._writer = self._connect()
                    self._writer_pid = self._writer.info.backend_pid
                tx = PgTx(self._writer)
                tx.execute("BEGIN")
                try:
                    results = self._run_optimistic(tx, batch)
                    tx.flush_notifications()
                except _ROLLED_BACK as exc:
                    # Another host's writer locked the same rows in the other order
                    # (deadlock): the server rolled this batch back. Nothing of it was
                    # saved and its jobs are SQL only: run it again, not fail it all.
                    if attempt == ROLLBACK_RETRIES:
                        raise
                    logger.warning("a batch of %d writes ran again: %s", len(batch), _short(exc))
                    tx.execute("ROLLBACK")
                    continue
                committing = True
                tx.execute("COMMIT")
                return results
            raise AssertionError("unreachable")
        except (psycopg.Error, Unavailable) as exc:
            logger.error("commit of %d writes failed: %s", len(batch), _short(exc))
            self._reset_writer()
            saved = "it may or may not have been saved" if committing else "nothing of it was saved"
            kind = InDoubt if committing else Unavailable
            error = kind(
                f"the database {self.location} could not commit this write ({_short(exc)}):"
                f" {saved}; retry once the database is back"
            )
            return [(job, None, error) for job in batch]

    @staticmethod
    def _run_optimistic(tx: PgTx, batch: list[_Job]) -> list[_Outcome]:
        """Run the batch without savepoints (each is a round trip to the server); if a job
        fails, roll everything back and run the batch again with a savepoint per job, so
        the failure stays that job's alone. Jobs are SQL only: running one twice after a
        rollback is the same as running it once. A broken connection propagates."""
        results: list[_Outcome] = []
        for job in batch:
            try:
                results.append((job, job.fn(tx), None))
            except psycopg.OperationalError:
                raise
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's future
                tx.execute("ROLLBACK")
                tx.discard_notifications(0)
                tx.execute("BEGIN")
                if len(batch) == 1:
                    return [(job, None, exc)]
                return _run_jobs(tx, batch)
        return results

    def _reset_writer(self) -> None:
        writer = self._writer
        if writer is None:
            return
        if not writer.closed and writer.info.transaction_status in _RECOVERABLE:
            with contextlib.suppress(psycopg.Error):
                writer.execute("ROLLBACK")
                return
        with contextlib.suppress(psycopg.Error):
            writer.close()
        self._writer = None

    # -- notifications -----------------------------------------------------------------------

    def subscribe(self, channel: str, handler: Callable[[str, bool], None]) -> None:
        """Call `handler(payload, mine)` on the event loop for each notification on
        `channel`; `mine` is true when this host's writer sent it."""
        if not CHANNEL_RE.fullmatch(channel):
            raise ValueError(f"bad channel {channel!r}")
        self._handlers.setdefault(channel, []).append(handler)

    def on_resync(self, callback: Callable[[], None]) -> None:
        """Call `callback` on the event loop whenever the listener (re)connects:
        notifications sent while it was away are lost, so state must be re-read."""
        self._on_resync.append(callback)

    async def start(self) -> None:
        """Start the listener thread; return once it listens (or after 5 s)."""
        if self._listener is not None or not self._handlers:
            return
        loop = asyncio.get_running_loop()
        self._listener = threading.Thread(
            target=self._listen, args=(loop,), name="postgres-listener", daemon=True
        )
        self._listener.start()
        await asyncio.to_thread(self.listening.wait, 5.0)

    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        attempt = 0
        while not self._stop_listening.is_set():
            try:
                conn = self._connect()
            except Unavailable as exc:
                self._pause(attempt, exc)
                attempt += 1
                continue
            try:
                for channel in self._handlers:
                    conn.execute(f"LISTEN {channel}")  # names checked by CHANNEL_RE
                attempt = 0
                loop.call_soon_threadsafe(self._resynced)
                self.listening.set()
                while not self._stop_listening.is_set():
                    for note in conn.notifies(timeout=0.5):
                        self._queue_note(loop, (note.channel, note.payload, note.pid))
            except psycopg.Error as exc:
                self.listening.clear()
                if not self._stop_listening.is_set():
                    self._pause(attempt, exc)
                    attempt += 1
            except RuntimeError:
                return  # the event loop closed
            finally:
                with contextlib.suppress(psycopg.Error):
                    conn.close()

    def _queue_note(self, loop: asyncio.AbstractEventLoop, note: tuple[str, str, int]) -> None:
        """Hand a notification to the loop (listener thread). The loop drains what queued
        up in one callback, so handlers can batch their reads; past QUEUED_NOTES (the loop
        is far behind: another host's flood) the queue is dropped and the loop re-reads
        everything instead, as after a reconnect: the backlog stays bounded."""
        with self._notes_lock:
            if len(self._notes) >= QUEUED_NOTES:
                self._notes.clear()
                self._notes_lost = True
            self._notes.append(note)
            if self._drain_pending:
                return
            self._drain_pending = True
        loop.call_soon_threadsafe(self._drain_notes)

    def _drain_notes(self) -> None:
        with self._notes_lock:
            notes, self._notes = self._notes, []
            lost, self._notes_lost = self._notes_lost, False
            self._drain_pending = False
        if lost:
            logger.warning("fell behind other hosts' notifications; re-reading instead")
            self._resynced()
        for channel, payload, pid in notes:
            self._dispatch(channel, payload, pid)

    def _pause(self, attempt: int, exc: BaseException) -> None:
        if attempt == 0:
            logger.warning("listening for other hosts' changes stopped: %s", _short(exc))
        self._stop_listening.wait(RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)])

    def _resynced(self) -> None:
        for callback in self._on_resync:
            try:
                callback()
            except Exception as exc:  # noqa: BLE001 - one resync must not stop the others
                logger.warning("re-reading after the listener reconnected failed: %s", exc)

    def _dispatch(self, channel: str, payload: str, pid: int) -> None:
        mine = pid == self._writer_pid
        for handler in self._handlers.get(channel, ()):
            try:
                handler(payload, mine)
            except Exception:
                logger.exception("handling a %s notification failed", channel)

    def _close_connections(self) -> None:
        self._stop_listening.set()
        if self._listener is not None:
            self._listener.join(timeout=10.0)
        for conn in (self._writer, self._reader):
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    conn.close()

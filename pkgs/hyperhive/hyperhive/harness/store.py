"""The agent's event store: ``events(id, ts, kind, payload_json)`` in a WAL sqlite file.

The host's ``events_vacuum`` trims this file (SPEC §13); the harness only appends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from pathlib import Path
from typing import cast

from hyperhive.db.connection import Migration, SqliteDatabase, SqliteTx, Tx
from hyperhive.errors import HyperhiveError
from hyperhive.harness.events import Event

logger = logging.getLogger(__name__)

EVENTS_MIGRATIONS: list[Migration] = [
    (
        1,
        "events",
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            kind TEXT NOT NULL,
            payload_json TEXT NOT NULL
        );
        CREATE INDEX events_ts ON events (ts);
        """,
    )
]


class EventStore:
    """Appends bus events in batches on the database's writer thread."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        self._pending: list[Event] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._broken = False
        # Held while a batch is being written, so flush() also waits for one in flight.
        self._writing = asyncio.Lock()

    @classmethod
    def open(cls, path: Path) -> EventStore | None:
        """Open (creating) the store, or return None so the harness runs without one."""
        try:
            db = SqliteDatabase(path, EVENTS_MIGRATIONS)
        except (OSError, sqlite3.Error, RuntimeError) as exc:
            logger.warning(
                "events db %s cannot be opened (%s): running in no-store mode, the live "
                "stream still works; fix the path or permissions and restart to keep history",
                path,
                exc,
            )
            return None
        return cls(db)

    def next_id(self) -> int:
        """The id after the newest stored event, so ids stay unique across restarts."""
        row = self._db.read(lambda c: c.execute("SELECT max(id) FROM events").fetchone())
        return int(row[0] or 0) + 1

    def start(self) -> None:
        """Start the background writer (needs a running loop)."""
        self._task = asyncio.create_task(self._flush_forever(), name="events-store")

    def append(self, event: Event) -> None:
        """Queue ``event``; written with the next batch."""
        if not self._broken:
            self._pending.append(event)
            self._wake.set()

    async def close(self) -> None:
        """Write what is queued, then close the database."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._flush()
        await self._db.close()

    @property
    def working(self) -> bool:
        """False once a write failed (then the harness runs as in no-store mode)."""
        return not self._broken

    def list_events(self, after_id: int = 0, limit: int = 500) -> list[Event]:
        """Stored events with id > ``after_id``, oldest first."""
        rows = self._db.read(
            lambda c: c.execute(
                "SELECT id, ts, kind, payload_json FROM events WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        )
        return [Event(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    def list_recent(self, limit: int) -> list[Event]:
        """The newest ``limit`` stored events, oldest first (the web UI's history)."""
        rows = self._db.read(
            lambda c: c.execute(
                "SELECT id, ts, kind, payload_json FROM"
                " (SELECT * FROM events ORDER BY id DESC LIMIT ?) ORDER BY id",
                (limit,),
            ).fetchall()
        )
        return [Event(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    async def flush(self) -> None:
        """Write what is queued now, so a read right after sees every published event."""
        await self._flush()

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._flush()

    async def _flush(self) -> None:
        async with self._writing:
            await self._write_pending()

    async def _write_pending(self) -> None:
        if not self._pending or self._broken:
            return
        batch, self._pending = self._pending, []
        rows = [(e.id, e.ts, e.kind, json.dumps(e.payload)) for e in batch]

        def insert(conn: Tx) -> None:
            cast(SqliteTx, conn).executemany(
                "INSERT OR REPLACE INTO events (id, ts, kind, payload_json) VALUES (?, ?, ?, ?)",
                rows,
            )

        try:
            await self._db.write(insert)
        except HyperhiveError as exc:
            # Disk full or file gone: keep the agent working, stop trying to store.
            logger.warning("events db write failed (%s): switching to no-store mode", exc.message)
            self._broken = True

"""The hourly sweep: broker retention and events_vacuum over every agent (SPEC §13).

events_vacuum lives on the host, not in the harness, so that a broken harness cannot
disable its own cleanup.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path

from hyperhive.broker.service import Broker
from hyperhive.settings import Settings

logger = logging.getLogger(__name__)


def vacuum_events_db(path: Path, keep_days: int, keep_rows: int, now: float) -> int:
    """Delete events older than `keep_days`, then all but the newest `keep_rows`."""
    conn = sqlite3.connect(path, timeout=5, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        cutoff = now - keep_days * 86400
        deleted = conn.execute("DELETE FROM events WHERE ts < ?", (cutoff,)).rowcount
        deleted += conn.execute(
            "DELETE FROM events WHERE id NOT IN"
            " (SELECT id FROM events ORDER BY id DESC LIMIT ?)",
            (keep_rows,),
        ).rowcount
        conn.execute("COMMIT")
        return deleted
    finally:
        conn.close()


def events_vacuum(settings: Settings) -> int:
    """Sweep every agent's events db; a broken file is logged and skipped."""
    total = 0
    now = time.time()
    for path in sorted((settings.state_dir / "agents").glob("*/state/hyperhive-events.sqlite")):
        try:
            total += vacuum_events_db(
                path, settings.events_keep_days, settings.events_keep_rows, now
            )
        except sqlite3.Error as exc:
            logger.warning("events_vacuum skipped %s: %s", path, exc)
    return total


async def sweep_forever(settings: Settings, broker: Broker) -> None:
    """Run retention and events_vacuum now and then every sweep interval."""
    while True:
        try:
            deleted = await broker.delete_old(settings.retention_days)
            vacuumed = await asyncio.to_thread(events_vacuum, settings)
            logger.info("sweep: %d old messages, %d old events deleted", deleted, vacuumed)
        except Exception:
            logger.exception("retention sweep failed; trying again next interval")
        await asyncio.sleep(settings.sweep_interval_seconds)

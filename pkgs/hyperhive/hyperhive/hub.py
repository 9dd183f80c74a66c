"""The daemon's change feed: every state change is published here with a sequence number.

The dashboard's SSE stream is a subscriber; `/api/state` snapshots carry the `seq` they
were taken at, so a client drops frames with `seq <= snapshot.seq` (SPEC §11).

`seq` starts again at 1 with every daemon start; `epoch` (random, per start) tells the
lives apart, so a `seq` is only ever compared with one of the same epoch.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    """One change: `kind` is message | question | approval | agent; `data` is its JSON."""

    seq: int
    kind: str
    data: dict[str, Any]


class Hub:
    """In-process fan-out of changes to bounded subscriber queues."""

    def __init__(self) -> None:
        self.seq = 0
        self.epoch = secrets.token_hex(4)
        self._subscribers: set[asyncio.Queue[Change]] = set()

    @property
    def active(self) -> bool:
        """Whether anyone listens (publishers may skip building a change nobody reads)."""
        return bool(self._subscribers)

    def subscribe(self, maxsize: int = 10_000) -> asyncio.Queue[Change]:
        """A queue receiving every change published from now on."""
        queue: asyncio.Queue[Change] = asyncio.Queue(maxsize=maxsize)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Change]) -> None:
        """Stop feeding `queue`."""
        self._subscribers.discard(queue)

    def publish(self, kind: str, data: dict[str, Any]) -> Change:
        """Number a change and hand it to every subscriber; a full queue is dropped."""
        self.seq += 1
        change = Change(self.seq, kind, data)
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(change)
            except asyncio.QueueFull:
                logger.warning("a change subscriber fell %d behind; dropping it", queue.qsize())
                self._subscribers.discard(queue)
        return change

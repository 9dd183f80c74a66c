"""The agent's event bus: in-process fan-out (for the web UI's SSE) plus the event store."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

logger = logging.getLogger(__name__)

# A subscriber that falls this far behind loses its oldest events, not the harness's memory.
SUBSCRIBER_BACKLOG = 1000
EPOCH_RE = re.compile(r"[0-9a-f]{8}")
"""An epoch as it appears in an SSE id ``<epoch>-<n>``."""


def new_epoch() -> str:
    """A fresh epoch: 8 random hex digits, different on every start.

    Event numbers are unique only within an epoch: after a restart whose store was
    emptied (events_vacuum) or in no-store mode they start again at 1. A client names
    its position as ``<epoch>-<n>``, so a position from an earlier life is recognised
    and answered with a full resync, never compared with this life's numbers.
    """
    return secrets.token_hex(4)


@dataclass(frozen=True)
class Event:
    """One bus event. ``kind`` is stream | note | state | turn_start | turn_end | ..."""

    id: int
    ts: float
    kind: str
    payload: dict[str, Any]


class Sink(Protocol):
    """Where published events are persisted (the event store)."""

    def append(self, event: Event) -> None:
        """Queue ``event`` for storage; must not block."""


class EventBus:
    """Publish events to every live subscriber and to the store, if there is one."""

    def __init__(self, sink: Sink | None = None, first_id: int = 1) -> None:
        self._sink = sink
        self._next_id = first_id
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self.epoch = new_epoch()

    @property
    def last_id(self) -> int:
        """The id of the newest published event (first_id - 1 before the first)."""
        return self._next_id - 1

    def position(self, event_id: int) -> str:
        """The SSE id of event ``event_id`` of this epoch: ``<epoch>-<n>``."""
        return f"{self.epoch}-{event_id}"

    def publish(self, kind: str, payload: dict[str, Any]) -> Event:
        """Stamp, fan out and store one event. Never blocks, never raises for a slow reader."""
        event = Event(self._next_id, time.time(), kind, payload)
        self._next_id += 1
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()  # drop the oldest: a stuck browser must not stall us
            queue.put_nowait(event)
        if self._sink is not None:
            self._sink.append(event)
        return event

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event]]:
        """A queue that receives every event published while the context is open."""
        queue: asyncio.Queue[Event] = asyncio.Queue(SUBSCRIBER_BACKLOG)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

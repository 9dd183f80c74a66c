"""SSE fan-out: one hub subscription, each change rendered once, bytes to every stream.

Rendering and JSON-encoding a change once (not once per browser) is what lets 50 streams
take 1,000 changes/s. Each stream has a bounded queue of encoded frames; a stream that falls
behind is not allowed to grow a backlog: its queue is emptied and it is told to `resync`
(fetch `/api/state` again), which costs one snapshot instead of unbounded memory.
"""

from __future__ import annotations

import asyncio
import json
import logging

from hyperhive.dashboard.services import HiveServices
from hyperhive.dashboard.views import RecentMessages, Renderer
from hyperhive.hub import Change

logger = logging.getLogger(__name__)

STREAM_QUEUE = 4096
"""Frames a stream may have pending before it is told to resync."""
BATCH = 512
"""Frames written to a stream in one write."""
KEEPALIVE_SECONDS = 15.0
"""A comment line this often, so dead connections are noticed and proxies keep them open."""

RESYNC = b"event: resync\ndata: {}\n\n"
CLOSED: None = None


def sse_frame(change: Change, payload: dict[str, object], epoch: str) -> bytes:
    """One `change` event; its id `<epoch>-<seq>` is unique across daemon restarts."""
    data = json.dumps(payload, separators=(",", ":"), default=str)
    return f"id: {epoch}-{change.seq}\nevent: change\ndata: {data}\n\n".encode()


class Stream:
    """One connected browser: a bounded queue of encoded frames."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=STREAM_QUEUE)
        self.resyncs = 0

    def put(self, frame: bytes) -> None:
        """Queue a frame; a full queue is replaced by one resync."""
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.resyncs += 1
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)

    def close(self) -> None:
        """End the stream (daemon shutdown)."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(CLOSED)

    async def next_chunk(self) -> bytes | None:
        """Pending frames joined (or a keepalive comment); None when closed."""
        try:
            async with asyncio.timeout(KEEPALIVE_SECONDS):
                first = await self.queue.get()
        except TimeoutError:
            return b": keepalive\n\n"
        if first is CLOSED:
            return None
        frames = [first]
        while len(frames) < BATCH and not self.queue.empty():
            frame = self.queue.get_nowait()
            if frame is CLOSED:
                self.queue.put_nowait(CLOSED)
                break
            frames.append(frame)
        return b"".join(frames)


class Fanout:
    """Reads the hub, renders each change once and hands the bytes to every stream."""

    def __init__(self, hive: HiveServices, renderer: Renderer) -> None:
        self._hive = hive
        self._renderer = renderer
        self.streams: set[Stream] = set()
        self._recent: RecentMessages | None = None
        self._queue: asyncio.Queue[Change] | None = None

    @property
    def recent(self) -> RecentMessages:
        """The cached latest messages (and the seq the fan-out has reached)."""
        if self._recent is None:
            self.subscribe()
        assert self._recent is not None
        return self._recent

    def subscribe(self) -> asyncio.Queue[Change]:
        """Load the latest messages and subscribe to the hub, with no await in between."""
        if self._queue is not None:
            self._hive.hub.unsubscribe(self._queue)
        self._recent = RecentMessages(self._hive)
        self._queue = self._hive.hub.subscribe()
        return self._queue

    def add(self) -> Stream:
        """A new stream receiving every change from now on."""
        stream = Stream()
        self.streams.add(stream)
        return stream

    def remove(self, stream: Stream) -> None:
        """Stop feeding `stream`."""
        self.streams.discard(stream)

    def close_all(self) -> None:
        """End every stream (on_shutdown, so the server need not wait for them)."""
        for stream in list(self.streams):
            stream.close()
        self.streams.clear()

    def encode(self, change: Change) -> bytes:
        """The SSE frame of one change: its data plus the page ops it implies."""
        ops = [op.as_json() for op in self._renderer.ops(change, self._hive)]
        epoch = self._hive.hub.epoch
        payload = {"epoch": epoch, "seq": change.seq, "kind": change.kind, "ops": ops}
        return sse_frame(change, payload, epoch)

    async def run(self) -> None:
        """Forward hub changes until cancelled."""
        hub = self._hive.hub
        queue = self._queue or self.subscribe()
        try:
            while True:
                change = await queue.get()
                self.recent.take(change)
                try:
                    frame = self.encode(change)
                except Exception:  # a bad change must not end the live page for everyone
                    logger.exception("could not render change %d (%s)", change.seq, change.kind)
                    frame = RESYNC
                for stream in list(self.streams):
                    stream.put(frame)
                # Publishing feeds every subscribed queue synchronously, so an empty queue
                # with a newer hub seq means the hub dropped us for falling behind.
                if queue.empty() and hub.seq != change.seq:
                    logger.warning("the dashboard fell behind the change feed; resyncing")
                    queue = self.subscribe()
                    for stream in list(self.streams):
                        stream.put(RESYNC)
        finally:
            if self._queue is not None:
                hub.unsubscribe(self._queue)
                self._queue = None

"""What the web UI can do to its harness, without HTTP: operator messages, model, compaction,
new session, cancel, login, and the agent's inbox view.

Architecture Invariant: the web UI holds only this agent's own socket, and identity is the
socket, so it cannot send *as the operator* through the broker. A message the operator types
here goes straight into this harness's turn loop as a local operator message: recorded in the
event store (``operator_message``), run as a turn with a prompt that says where it came from,
never stored in the broker. Replies go back through the broker as usual
(``send(to="operator")``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hyperhive.errors import Conflict, HyperhiveError, InvalidRequest, Unavailable
from hyperhive.harness.events import EventBus
from hyperhive.harness.login import LoginRunner
from hyperhive.harness.loop import Availability, TurnLoop
from hyperhive.harness.model import MODEL_ALIASES, is_model_name
from hyperhive.settings import HarnessSettings
from hyperhive.wire import requests as rq
from hyperhive.wire import responses as rs
from hyperhive.wire.client import SocketClient

logger = logging.getLogger(__name__)

# The same cap as a broker message: an operator message is one, only delivered locally.
MAX_MESSAGE = rq.MAX_BODY
DEFAULT_MODEL_WORD = "default"
INBOX_LIMIT = 50
INBOX_INTERVAL_SECONDS = 2.0
INBOX_BODY_CAP = 4000
# A turn starting or ending is when the inbox most likely changed: refresh at once.
INBOX_POKES = frozenset({"turn_start", "turn_end", "operator_message"})


class TooLarge(InvalidRequest):
    """A request body over a limit."""

    status = 413


def validate_model(name: str) -> str:
    """``name`` if claude would take it as a model, else InvalidRequest naming the choices."""
    name = name.strip()
    if is_model_name(name):
        return name
    shown = repr(name[:60])
    raise InvalidRequest(
        f"unknown model {shown}: use an alias ({', '.join(MODEL_ALIASES)}), a full model name"
        f" like claude-sonnet-4-5, or '{DEFAULT_MODEL_WORD}' to go back to the agent's default"
    )


class JobKind(StrEnum):
    """Work the web UI queues for the turn loop."""

    MESSAGE = "message"
    COMPACT = "compact"


@dataclass(frozen=True)
class Job:
    """One queued piece of work."""

    kind: JobKind
    body: str = ""


class Controls:
    """The web UI's handle on one harness; run ``work()`` and ``inbox.run()`` as tasks."""

    def __init__(
        self, settings: HarnessSettings, loop: TurnLoop, bus: EventBus, login: LoginRunner
    ) -> None:
        self.settings = settings
        self.loop = loop
        self.bus = bus
        self.login = login
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.inbox = InboxWatcher(settings, bus)

    # -- operator messages and compaction (serialised with broker turns by the loop) ---
    def send(self, body: str) -> int:
        """Queue an operator message for a turn; how many jobs are now queued."""
        if not body.strip():
            raise InvalidRequest("the message is empty: type something first")
        if len(body) > MAX_MESSAGE:
            raise TooLarge(
                f"the message is {len(body)} characters; the limit is {MAX_MESSAGE}: shorten it"
                " or write it to a file in the agent's state dir and point to the file"
            )
        self._refuse_without_login()
        self.bus.publish("operator_message", {"body": body, "via": "web UI"})
        self.queue.put_nowait(Job(JobKind.MESSAGE, body))
        return self.queue.qsize()

    def compact(self) -> int:
        """Queue a /compact of the session (runs between turns)."""
        self._refuse_without_login()
        self.bus.publish("note", {"source": "web UI", "text": "/compact queued"})
        self.queue.put_nowait(Job(JobKind.COMPACT))
        return self.queue.qsize()

    async def work(self) -> None:
        """Run queued jobs one at a time, forever (a task owned by the web UI app)."""
        while True:
            job = await self.queue.get()
            try:
                if job.kind is JobKind.MESSAGE:
                    await self.loop.handle_operator(job.body)
                else:
                    await self.loop.compact()
            except asyncio.CancelledError:
                raise
            except Exception:  # a task boundary: one bad job must not stop the queue
                logger.exception("web UI job %s failed", job.kind.value)

    def _refuse_without_login(self) -> None:
        if self.loop.status is Availability.NEEDS_LOGIN:
            raise Conflict("claude is not logged in here: log in with the login panel first")

    # -- direct controls ---------------------------------------------------------------
    def cancel(self) -> None:
        """SIGINT the running turn."""
        if not self.loop.cancel():
            raise Conflict("nothing to cancel: no turn is running")

    def new_session(self) -> None:
        """The next turn starts a fresh conversation."""
        self.loop.new_session()
        self.bus.publish("note", {"source": "web UI", "text": "next turn starts a new session"})

    def set_model(self, name: str) -> str:
        """Persist the model override (``default`` removes it); the model of the next turn."""
        path = self.settings.model_path
        if name.strip() == DEFAULT_MODEL_WORD:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        else:
            model = validate_model(name)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                # Atomic: the loop reads this file at every turn start.
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".hyperhive-model.")
                with os.fdopen(fd, "w") as handle:
                    handle.write(model + "\n")
                os.replace(tmp, path)
            except OSError as exc:
                raise Unavailable(
                    f"cannot write the model file {path}: {exc.strerror or exc}"
                    " — check that the state dir is writable"
                ) from exc
        effective = self.loop.read_model()
        self.bus.publish("model", {"model": effective})
        return effective

    def snapshot(self) -> dict[str, Any]:
        """Everything ``/api/state`` shows."""
        return {
            "agent": self.settings.agent_name,
            "state": self.loop.state.value,
            "status": self.loop.status.value,
            "since": self.loop.since,
            "model": self.loop.read_model(),
            "default_model": self.settings.default_model,
            "models": list(MODEL_ALIASES),
            "queued": self.queue.qsize(),
            "login": self.login.view.as_json(),
            "inbox": self.inbox.view(),
        }


class InboxWatcher:
    """The agent's recent traffic (``recent`` on its own socket: non-consuming), kept fresh."""

    def __init__(self, settings: HarnessSettings, bus: EventBus) -> None:
        self._socket = settings.socket
        self._bus = bus
        self.rows: list[dict[str, Any]] = []
        self.error: str | None = None
        self.version = 0
        self._changed = asyncio.Event()
        self._client: SocketClient | None = None
        # Poll only while a page is open: idle agents cost the daemon nothing.
        self._watchers = 0
        self._watched = asyncio.Event()
        self._refreshing = asyncio.Lock()  # one connection, one request at a time

    def view(self) -> dict[str, Any]:
        """Rows (newest last) and the last error, if the socket is unreachable."""
        return {"rows": self.rows, "error": self.error, "version": self.version}

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Keep the rows fresh while the context is open (one per live page)."""
        self._watchers += 1
        self._watched.set()
        try:
            yield
        finally:
            self._watchers -= 1
            if not self._watchers:
                self._watched.clear()

    async def wait_change(self, seen: int) -> int:
        """Return the version once it differs from ``seen``."""
        while self.version == seen:
            await self._changed.wait()
        return self.version

    async def run(self, interval: float = INBOX_INTERVAL_SECONDS) -> None:
        """Refresh every ``interval`` seconds and right after a turn starts or ends."""
        async with self._bus.subscribe() as events:
            try:
                while True:
                    await self._watched.wait()
                    await self.refresh()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(interval):
                            while (await events.get()).kind not in INBOX_POKES:
                                pass
            finally:
                if self._client is not None:
                    await self._client.close()

    async def refresh(self) -> None:
        """Fetch the rows once; publish a change to waiters if they differ."""
        async with self._refreshing:
            await self._fetch()

    async def _fetch(self) -> None:
        rows: list[dict[str, Any]] = self.rows
        error: str | None = None
        try:
            if self._client is None:
                self._client = await SocketClient.connect(self._socket)
            reply = await self._client.call(rq.Recent(limit=INBOX_LIMIT))
            if isinstance(reply, rs.RecentReply):
                rows = [self._row(r) for r in reply.rows]
        except (HyperhiveError, OSError, asyncio.IncompleteReadError) as exc:
            error = getattr(exc, "message", None) or str(exc)
            if self._client is not None:
                await self._client.close()
                self._client = None
        if rows != self.rows or error != self.error:
            self.rows, self.error = rows, error
            self.version += 1
            self._changed.set()
            self._changed = asyncio.Event()

    @staticmethod
    def _row(row: rs.RecentRow) -> dict[str, Any]:
        data = row.model_dump(by_alias=True)
        body = str(data["body"])
        if len(body) > INBOX_BODY_CAP:
            data["body"] = body[:INBOX_BODY_CAP] + f"… ({len(body) - INBOX_BODY_CAP} more)"
        return data

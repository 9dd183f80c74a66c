"""The per-agent web UI (SPEC §12): an aiohttp app factory, its routes and the SSE stream.

Routes: ``GET /``, ``GET /static/*``, ``GET /favicon.ico``, ``GET /events/history`` (the
last 2000 events), ``GET /events/stream`` (SSE, resumable with ``Last-Event-ID`` or
``?after=<epoch>-<id>``; a position from another epoch gets ``event: resync``),
``GET /api/state``, ``GET /api/journal``, and the POST-only controls ``/api/send``,
``/api/cancel``, ``/api/compact``, ``/api/model``, ``/api/new-session``,
``/api/login/start``, ``/api/login/code``. POSTs from another origin are refused.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from aiohttp import web
from aiohttp_sse import EventSourceResponse

from hyperhive import webstatic
from hyperhive.errors import InvalidRequest
from hyperhive.harness.events import EPOCH_RE, Event
from hyperhive.harness.journal import read_journal
from hyperhive.harness.login import LoginRunner
from hyperhive.web import KEY_CHECK, bearer, create_web_app, open_sse
from hyperhive.webui.control import Controls, InboxWatcher

if TYPE_CHECKING:
    from hyperhive.harness.assembly import Harness

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
HISTORY_LIMIT = 2000
# Strings longer than this are cut before they reach a browser (whole files come back as
# tool results); the event store keeps them whole.
STRING_CAP = 16 * 1024
KEEPALIVE_SECONDS = 15.0
KEY_RECHECK_SECONDS = 5.0
"""How often an open stream checks its key is still this page's (a rotation ends it)."""
PUBLIC_PAGES = frozenset({"/", "/favicon.ico"})
"""The page shell (no agent data; webui.js loads everything with the key) and its icon."""
POSITION_RE = re.compile(rf"({EPOCH_RE.pattern})-([0-9]{{1,15}})")
LOGIN_HINT = (
    "not logged in to this page: open it from the dashboard's link to this agent"
    " (the link carries this page's key in its #fragment)"
)
# Room for a maximal operator message (256 Ki characters, up to 4 bytes each) as JSON.
CLIENT_MAX_SIZE = 2 * 1024 * 1024

CONTROLS: web.AppKey[Controls] = web.AppKey("controls")
HARNESS: web.AppKey[Harness] = web.AppKey("harness")
STREAMS: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("streams")
TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey("templates")


def trim(value: Any, cap: int = STRING_CAP) -> Any:
    """``value`` with every string over ``cap`` characters cut (and the cut said)."""
    if isinstance(value, str):
        if len(value) <= cap:
            return value
        return value[:cap] + f"\n… ({len(value) - cap} more characters not shown)"
    if isinstance(value, dict):
        return {k: trim(v, cap) for k, v in value.items()}
    if isinstance(value, list):
        return [trim(v, cap) for v in value]
    return value


class PageKey:
    """This page's key, read from the file the daemon writes (re-read when it changes)."""

    MAX_BYTES = 256

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._key = b""

    def current(self) -> bytes:
        """The key now (b"" when the file is missing or unreadable: nothing matches)."""
        try:
            info = os.stat(self.path)
        except OSError:
            return b""
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        if stamp != self._seen:
            try:
                with open(self.path, "rb") as f:
                    self._key = f.read(self.MAX_BYTES).strip()
            except OSError:
                return b""
            self._seen = stamp
        return self._key

    def check(self, presented: str) -> bool:
        """Constant-time check of a presented key."""
        key = self.current()
        return bool(key) and hmac.compare_digest(presented.encode(), key)


def event_json(event: Event) -> dict[str, Any]:
    """An event as the browser gets it."""
    payload = event.payload
    if "tool_use_result" in payload:
        # claude repeats each tool result there; the page reads message.content only.
        payload = {k: v for k, v in payload.items() if k != "tool_use_result"}
    return {"id": event.id, "ts": event.ts, "kind": event.kind, "payload": trim(payload)}


async def read_object(request: web.Request) -> dict[str, Any]:
    """The JSON object body of ``request``, or InvalidRequest saying what to send."""
    if request.content_type != "application/json":
        raise InvalidRequest("send the body as JSON (Content-Type: application/json)")
    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"the body is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object")
    return data


def text_field(data: dict[str, Any], name: str) -> str:
    """A required string field of a JSON body."""
    value = data.get(name)
    if not isinstance(value, str):
        raise InvalidRequest(f"field {name!r} is missing or not a string")
    return value


# -- pages and reads ---------------------------------------------------------------------


async def page(request: web.Request) -> web.Response:
    """The single page; everything on it is filled in by webui.js."""
    harness = request.app[HARNESS]
    html = (
        request.app[TEMPLATES]
        .get_template("page.html")
        .render(agent=harness.settings.agent_name, role=harness.role.value)
    )
    return web.Response(text=html, content_type="text/html")


async def favicon(request: web.Request) -> web.FileResponse:
    """The shared icon (public: browsers ask without the key, on every load)."""
    return web.FileResponse(webstatic.FAVICON)


async def api_state(request: web.Request) -> web.Response:
    """The current state snapshot."""
    harness = request.app[HARNESS]
    controls = request.app[CONTROLS]
    await controls.inbox.refresh()  # fresh even when no stream keeps it polled
    snap = controls.snapshot()
    snap["role"] = harness.role.value
    snap["store"] = harness.store is not None
    snap["epoch"] = harness.bus.epoch
    snap["now"] = time.time()  # the page measures "thinking · N s" against this clock
    return web.json_response(snap)


async def history(request: web.Request) -> web.Response:
    """The newest events (at most 2000), oldest first, and the position to resume at.

    ``epoch`` and ``last_id`` name that position (the stream's ``?after=<epoch>-<last_id>``);
    every event up to ``last_id`` is in ``events`` or gone for good (vacuumed, no store).
    """
    harness = request.app[HARNESS]
    store = harness.store
    last = harness.bus.last_id  # before the flush: all of these are stored after it
    answer: dict[str, Any] = {"epoch": harness.bus.epoch, "last_id": last}
    if store is None:
        return web.json_response({**answer, "events": [], "store": False})
    try:
        limit = max(1, min(int(request.query.get("limit", HISTORY_LIMIT)), HISTORY_LIMIT))
    except ValueError as exc:
        raise InvalidRequest("limit must be a whole number (1-2000)") from exc
    await store.flush()
    events = [e for e in store.list_recent(limit) if e.id <= last]
    return web.json_response({**answer, "events": [event_json(e) for e in events], "store": True})


class Resync(Exception):
    """The client's position cannot be resumed here; it must reload state and history."""


def resume_id(request: web.Request, epoch: str) -> int:
    """Where a stream resumes: ``Last-Event-ID`` (a reconnect) or ``?after=``.

    0 (or nothing) means "from now on". A position ``<epoch>-<n>`` of this epoch resumes
    after event n; one of another epoch (the harness restarted), or a bare number (no
    epoch: it cannot be told apart from a number of an earlier life), raises Resync.
    """
    raw = request.headers.get("Last-Event-ID") or request.query.get("after") or "0"
    if raw == "0":
        return 0
    match = POSITION_RE.fullmatch(raw)
    if match is None and not raw.isdigit():
        raise InvalidRequest("after / Last-Event-ID must be a position <epoch>-<id> (or 0)")
    if match is None or match.group(1) != epoch:
        raise Resync
    return int(match.group(2))


async def backlog(harness: Harness, after: int) -> list[Event]:
    """Stored events after ``after`` of this epoch; Resync when they cannot all be sent."""
    if after > harness.bus.last_id:
        raise Resync  # a position this life has not reached: not ours
    if after == harness.bus.last_id:
        return []
    store = harness.store
    if store is None or not store.working:
        return []  # no-store mode: live only, as the page says
    await store.flush()
    events = store.list_events(after, HISTORY_LIMIT + 1)
    if not events or events[0].id != after + 1 or len(events) > HISTORY_LIMIT:
        raise Resync  # vacuumed meanwhile, or more than one history: start again
    return events


async def stream(request: web.Request) -> web.StreamResponse:
    """SSE: events after the resume position (from the store), then live ones; inbox snapshots.

    A position that cannot be resumed gets one ``event: resync`` frame and the stream
    ends: the page reloads its state and history and reconnects from there.
    The stream ends once the key it was opened with is no longer this page's key (the
    operator rotated the secret): a rotation ends every session, open streams included.
    """
    harness = request.app[HARNESS]
    key = bearer(request) or ""
    inbox = request.app[CONTROLS].inbox
    task = asyncio.current_task()
    assert task is not None
    request.app[STREAMS].add(task)
    resp: EventSourceResponse | None = None
    try:
        async with harness.bus.subscribe() as queue:
            # Subscribed first, then read the store: nothing falls between the two.
            try:
                last = resume_id(request, harness.bus.epoch)
                events = await backlog(harness, last) if last else []
            except Resync:
                resp = await open_sse(request, KEEPALIVE_SECONDS)
                await send_resync(resp, harness.bus.epoch, harness.bus.last_id)
                return resp
            last = last or harness.bus.last_id
            resp = await open_sse(request, KEEPALIVE_SECONDS)
            for event in events:
                await send_event(resp, event, harness.bus.epoch)
                last = event.id
            with inbox.watching():
                await send_inbox(resp, inbox.view())
                epoch = harness.bus.epoch
                await pump(resp, queue, inbox, last, epoch, lambda: request.app[KEY_CHECK](key))
    except ConnectionResetError:
        pass  # the browser went away
    finally:
        request.app[STREAMS].discard(task)
        if resp is not None:
            resp.stop_streaming()
    return resp if resp is not None else web.Response(status=204)


async def pump(
    resp: EventSourceResponse,
    queue: asyncio.Queue[Event],
    inbox: InboxWatcher,
    last: int,
    epoch: str,
    still_valid: Callable[[], bool],
) -> None:
    """Forward bus events and inbox changes until the client goes away or the key changes."""
    seen = inbox.version
    get: asyncio.Task[Event] = asyncio.create_task(queue.get())
    changed: asyncio.Task[int] = asyncio.create_task(inbox.wait_change(seen))
    try:
        while still_valid():
            done, _ = await asyncio.wait(
                {get, changed}, timeout=KEY_RECHECK_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            if get in done:
                event = get.result()
                if event.id > last:  # the store backlog may already have sent it
                    await send_event(resp, event, epoch)
                    last = event.id
                get = asyncio.create_task(queue.get())
            if changed in done:
                seen = changed.result()
                await send_inbox(resp, inbox.view())
                changed = asyncio.create_task(inbox.wait_change(seen))
    finally:
        get.cancel()
        changed.cancel()


async def send_event(resp: EventSourceResponse, event: Event, epoch: str) -> None:
    """One SSE frame carrying a bus event; its id ``<epoch>-<n>`` lets the browser resume."""
    data = json.dumps(event_json(event), separators=(",", ":"))
    await resp.send(data, id=f"{epoch}-{event.id}", event="ev")


async def send_resync(resp: EventSourceResponse, epoch: str, last_id: int) -> None:
    """The frame that tells a client its position is from another life: reload everything."""
    data = json.dumps({"epoch": epoch, "last_id": last_id}, separators=(",", ":"))
    await resp.send(data, event="resync")


async def send_inbox(resp: EventSourceResponse, view: dict[str, Any]) -> None:
    """One SSE frame with the inbox snapshot."""
    await resp.send(json.dumps(view, separators=(",", ":")), event="inbox")


async def journal(request: web.Request) -> web.Response:
    """The last lines of this harness's own log."""
    try:
        lines = int(request.query.get("lines", "200"))
    except ValueError as exc:
        raise InvalidRequest("lines must be a whole number (1-2000)") from exc
    tail = await read_journal(request.app[HARNESS].role, lines)
    return web.json_response({"source": tail.source, "lines": tail.lines})


# -- controls (POST only, same origin only) ----------------------------------------------


async def api_send(request: web.Request) -> web.Response:
    """Queue an operator message for a turn."""
    body = text_field(await read_object(request), "body")
    queued = request.app[CONTROLS].send(body)
    return web.json_response({"ok": True, "queued": queued}, status=202)


async def api_cancel(request: web.Request) -> web.Response:
    """SIGINT the running turn."""
    request.app[CONTROLS].cancel()
    return web.json_response({"ok": True})


async def api_compact(request: web.Request) -> web.Response:
    """Queue a /compact of the session."""
    queued = request.app[CONTROLS].compact()
    return web.json_response({"ok": True, "queued": queued}, status=202)


async def api_model(request: web.Request) -> web.Response:
    """Set the model of the next turns (persisted to the model file)."""
    name = text_field(await read_object(request), "model")
    model = request.app[CONTROLS].set_model(name)
    return web.json_response({"ok": True, "model": model})


async def api_new_session(request: web.Request) -> web.Response:
    """The next turn skips --continue."""
    request.app[CONTROLS].new_session()
    return web.json_response({"ok": True})


async def api_login_start(request: web.Request) -> web.Response:
    """Start the login command."""
    view = await request.app[CONTROLS].login.start()
    return web.json_response({"ok": True, "login": view.as_json()})


async def api_login_code(request: web.Request) -> web.Response:
    """Write the pasted code to the login command."""
    code = text_field(await read_object(request), "code")
    view = await request.app[CONTROLS].login.submit_code(code)
    return web.json_response({"ok": True, "login": view.as_json()})


# -- the app -----------------------------------------------------------------------------


def create_app(harness: Harness, *, inbox_interval: float | None = None) -> web.Application:
    """The web UI app of ``harness``; its background tasks live in the app's cleanup_ctx."""
    app = create_web_app(
        name="web UI",
        key_check=PageKey(harness.settings.web_key_path).check,
        public=PUBLIC_PAGES,
        login_hint=LOGIN_HINT,
        client_max_size=CLIENT_MAX_SIZE,
    )
    login = LoginRunner(
        harness.settings.login_cmd,
        harness.loop.env,
        harness.bus.publish,
        harness.loop.logged_in,
        claude_bin=harness.settings.claude_bin,
    )
    controls = Controls(harness.settings, harness.loop, harness.bus, login)
    app[HARNESS] = harness
    app[CONTROLS] = controls
    app[STREAMS] = set[asyncio.Task[Any]]()
    app[TEMPLATES] = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )

    async def background(app: web.Application) -> AsyncIterator[None]:
        interval = inbox_interval
        tasks = [
            asyncio.create_task(controls.work(), name="webui-work"),
            asyncio.create_task(
                controls.inbox.run() if interval is None else controls.inbox.run(interval),
                name="webui-inbox",
            ),
        ]
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await login.close()

    async def close_streams(app: web.Application) -> None:
        streams: set[asyncio.Task[Any]] = app[STREAMS]
        for task in [*streams]:
            task.cancel()

    app.cleanup_ctx.append(background)
    app.on_shutdown.append(close_streams)
    r = app.router
    r.add_get("/", page)
    r.add_get("/favicon.ico", favicon)
    r.add_static("/static/common", webstatic.DIR)
    r.add_static("/static", HERE / "static")
    r.add_get("/events/history", history)
    r.add_get("/events/stream", stream)
    r.add_get("/api/state", api_state)
    r.add_get("/api/journal", journal)
    r.add_post("/api/send", api_send)
    r.add_post("/api/cancel", api_cancel)
    r.add_post("/api/compact", api_compact)
    r.add_post("/api/model", api_model)
    r.add_post("/api/new-session", api_new_session)
    r.add_post("/api/login/start", api_login_start)
    r.add_post("/api/login/code", api_login_code)
    return app

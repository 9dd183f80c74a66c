"""The dashboard's aiohttp app: routes of SPEC §11 over the daemon's services.

Handlers stay thin: validate the name or id from the URL first, call one service, answer
JSON (`{"ok": true, "message": ...}` or `{"ok": false, "error": ...}` with the error's
status). State-changing routes are POST only and refused cross-origin.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField
from multidict import MultiDictProxy

from hyperhive import webstatic
from hyperhive.agents.names import BROADCAST, MANAGER, OPERATOR, AgentName, validate_name
from hyperhive.agents.store import AgentState
from hyperhive.approvals.store import ApprovalKind
from hyperhive.dashboard.services import HiveServices
from hyperhive.dashboard.stream import RESYNC, Fanout
from hyperhive.dashboard.views import FLOW_LIMIT, Renderer, clip_row, snapshot
from hyperhive.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    Unavailable,
)
from hyperhive.http import BoundApp, serve_app
from hyperhive.web import create_web_app, open_sse

logger = logging.getLogger(__name__)

HIVE: web.AppKey[HiveServices] = web.AppKey("hive")
RENDERER = web.AppKey("renderer", Renderer)
FANOUT = web.AppKey("fanout", Fanout)
TASKS: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("tasks")
PUBLIC_PAGES = frozenset({"/", "/login", "/favicon.ico"})
"""Served without a key: the page shell (dashboard.js loads everything with the key), its icon."""

STATIC = Path(__file__).parent / "static"

VERB_WAIT_SECONDS = 5.0
"""A verb still running after this is answered 202; the page shows its progress."""
JOURNAL_MAX_LINES = 2000
DIFF_TIMEOUT_SECONDS = 15.0
MAX_BODY = 100_000
MAX_NOTE = 4000
ID_RE = re.compile(r"[0-9]{1,15}")
PAST = {"kill": "stopped", "rebuild": "rebuilt", "destroy": "destroyed"}
LOGIN_HINT = (
    "not logged in: run `hive-c0re login` on the host and open the URL it prints"
    " (the key travels in the URL's #fragment, never to a server)"
)


# -- edge validation -------------------------------------------------------------------------


def agent_name(raw: str, *, manager_ok: bool = False) -> AgentName:
    """A name from a URL or form: the manager where allowed, else the name rule."""
    if manager_ok and raw == MANAGER:
        return MANAGER
    return validate_name(raw)


def row_id(raw: str, what: str) -> int:
    """A positive integer id from a URL."""
    if not ID_RE.fullmatch(raw) or int(raw) == 0:
        raise InvalidRequest(f"invalid {what} id {raw[:20]!r}: use the number shown on the card")
    return int(raw)


def int_param(request: web.Request, key: str, default: int, low: int, high: int) -> int:
    """A bounded integer query parameter."""
    raw = request.query.get(key)
    if raw is None:
        return default
    if not ID_RE.fullmatch(raw):
        raise InvalidRequest(f"{key} must be a whole number between {low} and {high}")
    return max(low, min(high, int(raw)))


def ok(message: str, status: int = 200, **extra: object) -> web.Response:
    """A success answer."""
    return web.json_response({"ok": True, "message": message, **extra}, status=status)


async def bounded(request: web.Request, coro: Coroutine[Any, Any, Any], what: str) -> bool:
    """Run a verb; True if it finished within VERB_WAIT_SECONDS (its error is raised).

    A slower verb (a nixos rebuild) keeps running, owned by the app, and the caller answers
    202: the transient state on the page shows its progress. A closed browser tab does not
    cancel it either.
    """
    task = asyncio.ensure_future(coro)
    tasks = request.app[TASKS]
    tasks.add(task)
    task.add_done_callback(tasks.discard)

    def report(finished: asyncio.Task[Any]) -> None:
        if not finished.cancelled() and finished.exception() is not None:
            logger.error("%s failed: %s", what, finished.exception())

    try:
        done, _ = await asyncio.wait({task}, timeout=VERB_WAIT_SECONDS)
    except asyncio.CancelledError:  # the browser went away; the verb goes on
        task.add_done_callback(report)
        raise
    if task in done:
        task.result()
        return True
    task.add_done_callback(report)
    return False


# -- pages and reads -------------------------------------------------------------------------


async def index(request: web.Request) -> web.Response:
    """The page shell: no hive data (that needs the key); dashboard.js fills it in."""
    html = request.app[RENDERER].env.get_template("page.html").render(snap={"seq": 0}, lists={})
    return web.Response(text=html, content_type="text/html")


async def favicon(request: web.Request) -> web.FileResponse:
    """The shared icon (public: browsers ask without the key, on every load)."""
    return web.FileResponse(webstatic.FAVICON)


async def state(request: web.Request) -> web.Response:
    """The snapshot; `?html=1` adds every list rendered (what the page resyncs from)."""
    await request.app[HIVE].approvals.reap_orphans()
    snap = snapshot(request.app[HIVE], request.app[FANOUT].recent)
    snap["epoch"] = request.app[HIVE].hub.epoch  # whose `seq` this is (a restart: another)
    if request.query.get("html") == "1":
        snap["html"] = request.app[RENDERER].lists(snap)
    return web.json_response(snap, headers={"Cache-Control": "no-store"})


async def stream(request: web.Request) -> web.StreamResponse:
    """SSE: every change from now on; the client drops frames with seq <= its snapshot's.

    Nothing is replayed: a client that says where it was (`Last-Event-ID`, as EventSource
    does on a reconnect, or `?after=`) and is not exactly at the newest change of this
    daemon's life (another epoch after a restart, an older seq, or one never reached) is
    told to `resync` first.
    """
    fanout = request.app[FANOUT]
    response = await open_sse(request)
    client = fanout.add()  # subscribed before the first byte: the snapshot cannot miss a change
    was = request.headers.get("Last-Event-ID") or request.query.get("after")
    current = f"{request.app[HIVE].hub.epoch}-{fanout.recent.seq}"
    try:
        await response.write(b"retry: 1000\n: connected\n\n")
        if was and was != current:
            await response.write(RESYNC)
        while (chunk := await client.next_chunk()) is not None:
            await response.write(chunk)
    except ConnectionResetError:
        pass  # the tab went away
    finally:
        fanout.remove(client)
        response.stop_streaming()
    return response


async def webui_keys(request: web.Request) -> web.Response:
    """Each running agent's page key, for the links to its page (`#key=` in the URL).

    Only while the agent runs: a stopped agent's port is free, and another agent could
    serve a page there and read the key from the link (docs/security.md, known limits).
    Only this host's agents: another host's agent has its page (and its port) there, and
    here the same port may be a different agent's.
    """
    hive = request.app[HIVE]
    keys = {
        record.name: hive.credentials.page_key(record.name)
        for record in hive.registry.local()
        if record.state is AgentState.RUNNING
    }
    return web.json_response({"keys": keys})


async def history(request: web.Request) -> web.Response:
    """Message flow rows with id > `after` (the latest `limit` of them), oldest first."""
    after = int_param(request, "after", 0, 0, 10**15)
    limit = int_param(request, "limit", FLOW_LIMIT, 1, 1000)
    rows = [
        clip_row(m.model_dump(by_alias=True))
        for m in request.app[HIVE].broker.recent_all(limit, after)
    ]
    return web.json_response({"messages": rows, "html": request.app[RENDERER].items("flow", rows)})


async def diff(request: web.Request) -> web.Response:
    """The unified diff an approval would deploy (a revive: template -> kept config)."""
    hive = request.app[HIVE]
    approval = hive.approvals.get(row_id(request.match_info["id"], "approval"))
    if approval.kind_ == ApprovalKind.SPAWN and not approval.fetched_sha:
        return web.json_response({"diff": "", "note": "a new agent from the template"})
    try:
        async with asyncio.timeout(DIFF_TIMEOUT_SECONDS):
            text = await hive.approvals.diff(approval.id)
    except TimeoutError as exc:
        raise Unavailable(f"the diff of approval #{approval.id} took too long; retry") from exc
    return web.json_response({"diff": text})


async def journal(request: web.Request) -> web.Response:
    """The last lines of a live agent's container journal (journalctl -M or its log)."""
    hive = request.app[HIVE]
    name = agent_name(request.match_info["name"], manager_ok=True)
    record = hive.registry.find(name)
    if record is None or not record.live:
        raise NotFound(f"no live container for {name!r}: logs are shown for live agents only")
    lines = int_param(request, "lines", 200, 1, JOURNAL_MAX_LINES)
    text = await hive.lifecycle.backend.journal(hive.lifecycle.paths(name), lines)
    return web.json_response({"name": name, "lines": text})


# -- actions ---------------------------------------------------------------------------------


async def read_form(
    request: web.Request,
) -> MultiDictProxy[str | bytes | bytearray | FileField]:
    """The request's form, or InvalidRequest saying what to send."""
    try:
        return await request.post()
    except (ValueError, UnicodeDecodeError) as exc:
        # aiohttp raises these for a body that is not UTF-8 or not valid multipart.
        raise InvalidRequest(
            f"the form body could not be read ({type(exc).__name__}); send a UTF-8"
            " application/x-www-form-urlencoded or multipart form"
        ) from exc


async def form_text(request: web.Request, key: str, limit: int) -> str:
    """A stripped form field, at most `limit` characters."""
    form = await read_form(request)
    value = form.get(key, "")
    if not isinstance(value, str):
        raise InvalidRequest(f"{key} must be text")
    value = value.strip()
    if len(value) > limit:
        raise InvalidRequest(f"{key} is longer than {limit} characters; shorten it")
    return value


async def approve(request: web.Request) -> web.Response:
    """Approve (run) a pending approval."""
    approval_id = row_id(request.match_info["id"], "approval")
    hive = request.app[HIVE]
    hive.approvals.get(approval_id)
    if await bounded(request, hive.approvals.approve(approval_id), f"approval #{approval_id}"):
        return ok(f"approval #{approval_id} approved")
    return ok(f"approval #{approval_id} approved; still running", status=202)


async def deny(request: web.Request) -> web.Response:
    """Deny a pending approval with an optional note."""
    approval_id = row_id(request.match_info["id"], "approval")
    note = await form_text(request, "note", MAX_NOTE)
    await request.app[HIVE].approvals.deny(approval_id, note or None)
    return ok(f"approval #{approval_id} denied" + (f": {note}" if note else ""))


async def answer_question(request: web.Request) -> web.Response:
    """Answer: the chosen options and the free text, joined with ', '."""
    question_id = row_id(request.match_info["id"], "question")
    form = await read_form(request)
    parts = [c.strip() for c in form.getall("choice", []) if isinstance(c, str) and c.strip()]
    text = await form_text(request, "text", MAX_BODY)
    if text:
        parts.append(text)
    if not parts:
        raise InvalidRequest("pick an option or type an answer (or cancel the question)")
    if not await request.app[HIVE].questions.answer(question_id, ", ".join(parts)):
        raise Conflict(f"question #{question_id} was already resolved")
    return ok(f"answered question #{question_id}")


async def cancel_question(request: web.Request) -> web.Response:
    """Resolve a question as [cancelled]."""
    question_id = row_id(request.match_info["id"], "question")
    if not await request.app[HIVE].questions.cancel(question_id):
        raise Conflict(f"question #{question_id} was already resolved")
    return ok(f"cancelled question #{question_id}")


async def request_spawn(request: web.Request) -> web.Response:
    """Queue a spawn approval (the operator approves it on the card below)."""
    name = validate_name(await form_text(request, "name", 64))
    description = await form_text(request, "description", MAX_NOTE)
    approval_id = await request.app[HIVE].approvals.request_spawn(name, description)
    return ok(f"spawn of {name} requested: approval #{approval_id}", id=approval_id)


async def send(request: web.Request) -> web.Response:
    """T4LK: send a message as `operator`."""
    to = await form_text(request, "to", 64)
    if to not in (BROADCAST, MANAGER, OPERATOR):
        to = validate_name(to)  # OPERATOR: the broker says why, as on the CLI
    body = await form_text(request, "body", MAX_BODY)
    if not body:
        raise InvalidRequest("the message is empty: type something to send")
    hive = request.app[HIVE]
    ids = await hive.broker.send(OPERATOR, to, body)
    message = f"sent to {to}" + (f" ({len(ids)} agents)" if to == BROADCAST else "")
    if hint := hive.lifecycle.login_hint(to):
        message += f", but {hint}"
    return ok(message, ids=ids)


async def verb(request: web.Request) -> web.Response:
    """start | kill | restart | rebuild | destroy an agent."""
    action = request.match_info["verb"]
    lifecycle = request.app[HIVE].lifecycle
    name = agent_name(request.match_info["name"], manager_ok=action != "destroy")
    calls = {
        "start": lifecycle.start,
        "kill": lifecycle.kill,
        "restart": lifecycle.restart,
        "rebuild": lifecycle.rebuild,
    }
    coro = lifecycle.destroy(name) if action == "destroy" else calls[action](name)
    past = PAST.get(action, action + "ed")
    if await bounded(request, coro, f"{action} {name}"):
        return ok(f"{name} {past}")
    return ok(f"{action} of {name} is still running", status=202)


async def revive(request: web.Request) -> web.Response:
    """Bring a tombstone back with its kept state and credentials."""
    name = validate_name(request.match_info["name"])
    hive = request.app[HIVE]
    record = hive.registry.find(name)
    if record is None:
        raise NotFound(f"no kept state for {name!r}: request a spawn instead")
    if record.live:
        raise Conflict(f"agent {name!r} is not destroyed ({record.state})")
    if await bounded(request, hive.lifecycle.spawn(name), f"revive {name}"):
        return ok(f"{name} revived")
    return ok(f"revive of {name} is still running", status=202)


async def purge_tombstone(request: web.Request) -> web.Response:
    """Delete a destroyed agent's kept trees for good."""
    name = validate_name(request.match_info["name"])
    await request.app[HIVE].lifecycle.purge(name)
    return ok(f"{name} purged: its state and credentials are gone")


# -- the app ---------------------------------------------------------------------------------


async def _fanout_ctx(app: web.Application) -> Any:
    """Run the SSE fan-out while the app runs; finish verbs still running at shutdown."""
    app[FANOUT].subscribe()
    task = asyncio.create_task(app[FANOUT].run(), name="dashboard-fanout")
    yield
    pending = [task, *app[TASKS]]
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def _close_streams(app: web.Application) -> None:
    app[FANOUT].close_all()


def create_app(hive: HiveServices) -> web.Application:
    """The dashboard app over the services of a started daemon."""
    app = create_web_app(
        name="hive-c0re",
        key_check=hive.credentials.is_dashboard_key,
        public=PUBLIC_PAGES,
        login_hint=LOGIN_HINT,
        # Bound beyond loopback on purpose: any Host; the key still guards every route.
        check_host=_loopback(hive.settings.dashboard_host),
    )
    renderer = Renderer()
    app[HIVE] = hive
    app[RENDERER] = renderer
    app[FANOUT] = Fanout(hive, renderer)
    app[TASKS] = set()
    # A rotated secret ends every session: live streams close, their reconnect gets 401.
    hive.on_rotate.append(app[FANOUT].close_all)
    app.cleanup_ctx.append(_fanout_ctx)
    app.on_shutdown.append(_close_streams)
    app.add_routes(
        [
            web.get("/", index),
            web.get("/login", index),
            web.get("/favicon.ico", favicon),
            web.static("/static/common", webstatic.DIR),
            web.static("/static", STATIC),
            web.get("/api/state", state),
            web.get("/dashboard/stream", stream),
            web.get("/dashboard/history", history),
            web.get("/api/diff/{id}", diff),
            web.get("/api/journal/{name}", journal),
            web.get("/api/webui-keys", webui_keys),
            web.post("/approve/{id}", approve),
            web.post("/deny/{id}", deny),
            web.post("/answer-question/{id}", answer_question),
            web.post("/cancel-question/{id}", cancel_question),
            web.post("/purge-tombstone/{name}", purge_tombstone),
            web.post("/revive/{name}", revive),
            web.post("/request-spawn", request_spawn),
            web.post("/send", send),
            web.post("/{verb:start|kill|restart|rebuild|destroy}/{name}", verb),
        ]
    )
    return app


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def start_dashboard(hive: HiveServices, port: int | None = None) -> BoundApp:
    """Serve the dashboard on settings.dashboard_host:dashboard_port (or `port`)."""
    settings = hive.settings
    if not _loopback(settings.dashboard_host):
        logger.warning(
            "the dashboard listens on %s: anyone who can reach it has operator authority",
            settings.dashboard_host,
        )
    bound = await serve_app(
        create_app(hive),
        settings.dashboard_host,
        settings.dashboard_port if port is None else port,
    )
    logger.info("dashboard on %s", bound.url)
    return bound

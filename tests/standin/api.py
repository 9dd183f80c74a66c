"""A local stand-in for the Anthropic Messages API, for tests only.

The model cannot run here, so the real ``claude`` CLI is pointed at this server with
``ANTHROPIC_BASE_URL=http://127.0.0.1:<port>``. It speaks the real wire format: SSE with
``message_start``, ``content_block_start``/``content_block_delta``/``content_block_stop``,
``message_delta`` and ``message_stop``; errors as ``{"type": "error", "error": {...}}`` with
the real status codes (401 ``authentication_error``, 429 ``rate_limit_error``, 400
``invalid_request_error`` "prompt is too long").

Each test scripts the model per API key (every harness in a test gets its own
``ANTHROPIC_API_KEY``): a queue of steps, one popped per *main-loop* request (a streaming
request that offers tools). Anything else claude sends on the side (token counting, title or
summary calls) gets a short generic answer and never consumes the script.

Claude 2.1.330 defers MCP tools behind its ``ToolSearch`` tool: their schemas are not in the
request until the model asks for them. A scripted :class:`ToolCall` of a tool that is not yet
loaded therefore first answers with a ``ToolSearch`` ``select:<name>`` call and only then
calls the tool itself, as a real model would.

The server runs on its own event loop in a thread, so one instance serves sync and async
tests and subprocesses alike.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from aiohttp import web

JsonObj = dict[str, Any]


@dataclass
class Text:
    """An assistant turn that says ``text`` and ends (``stop_reason: end_turn``)."""

    text: str


@dataclass
class ToolCall:
    """An assistant turn that calls tool ``name`` with ``input`` (``stop_reason: tool_use``)."""

    name: str
    input: JsonObj = field(default_factory=dict)
    searched: bool = False


@dataclass
class ApiError:
    """An HTTP error with the real Anthropic error body."""

    status: int
    type: str
    message: str
    # Extra response headers, e.g. ``retry-after`` on a 429.
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def rate_limited(cls, retry_after: int | None = None) -> ApiError:
        """429 as the API sends it when the organisation's rate limit is hit.

        With ``retry_after`` it carries the ``retry-after`` header (seconds) and the
        ``anthropic-ratelimit-requests-reset`` header (RFC 3339) the real API sends, and
        lets claude retry it itself (``x-should-retry: true``), which is how claude
        reports the delay (``system/api_retry`` with ``retry_delay_ms``).
        """
        headers: dict[str, str] = {}
        if retry_after is not None:
            reset = time.time() + retry_after
            headers = {
                "retry-after": str(retry_after),
                "anthropic-ratelimit-requests-reset": time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(reset)
                ),
                "x-should-retry": "true",
            }
        return cls(
            429,
            "rate_limit_error",
            "This request would exceed the rate limit for your organization of 50 requests "
            "per minute. Please retry after some time.",
            headers,
        )

    @classmethod
    def overloaded(cls) -> ApiError:
        """529 the API returns when it is overloaded (transient)."""
        return cls(529, "overloaded_error", "Overloaded")

    @classmethod
    def server_error(cls) -> ApiError:
        """500 for an internal error of the API (transient)."""
        return cls(500, "api_error", "Internal server error")

    @classmethod
    def bad_request(
        cls, message: str = "Your credit balance is too low to access the Anthropic API."
    ) -> ApiError:
        """A 400 that no retry will fix (permanent for this message).

        Not every 400 will do: claude 2.1.330 recovers from some by itself (an invalid
        image: it retries without it), and reports this one as ``error: "billing_error"``.
        """
        return cls(400, "invalid_request_error", message)

    @classmethod
    def unauthorized(cls) -> ApiError:
        """401 for a bad or revoked key."""
        return cls(401, "authentication_error", "invalid x-api-key")

    @classmethod
    def prompt_too_long(cls) -> ApiError:
        """400 the API returns when the context is over the window."""
        return cls(
            400, "invalid_request_error", "prompt is too long: 212011 tokens > 200000 maximum"
        )


@dataclass
class Hang:
    """Start a message, then keep the stream open (pings) until the client goes away.

    ``started`` is set once the stream is open, so a test can cancel the turn at the
    right moment; ``max_seconds`` is the deadline after which the message ends normally.
    """

    text: str = "thinking..."
    max_seconds: float = 60.0
    started: threading.Event = field(default_factory=threading.Event)


@dataclass
class Drop:
    """Start a message, then close the TCP connection without finishing the stream."""

    text: str = "partial"


Step = Text | ToolCall | ApiError | Hang | Drop
StepFactory = Callable[[JsonObj], Step]


class Kind(StrEnum):
    """What a received request was for."""

    MAIN = "main"  # a model turn of the conversation: consumes the script
    COMPACT = "compact"  # claude's /compact summary request: answered with a summary
    SIDE = "side"  # anything else (token counting, titles): a generic answer


@dataclass
class Recorded:
    """One request as received."""

    path: str
    key: str
    body: JsonObj
    kind: Kind
    # time.monotonic() when the request arrived (system-wide: comparable across processes).
    at: float = field(default_factory=time.monotonic)


# Claude's compaction prompt (2.1.330) asks for "<analysis>" and "<summary>" blocks.
COMPACT_MARKER = "create a detailed summary of the conversation"
SUMMARY = "<analysis>stand-in</analysis>\n<summary>stand-in summary of the conversation</summary>"


def classify(body: JsonObj) -> Kind:
    """A main-loop turn offers tools; a compaction also does but asks for a summary.

    Main-loop requests stream, except claude's non-streaming fallback after a stream broke
    off (observed with 2.1.330 after a dropped connection): it is the same turn, so it too
    consumes the script.
    """
    if not body.get("tools"):
        return Kind.SIDE
    if COMPACT_MARKER in last_user_text(body):
        return Kind.COMPACT
    return Kind.MAIN


def loaded_tool_names(body: JsonObj) -> set[str]:
    """Tools whose schema the model can see in this request (not deferred)."""
    return {
        str(t.get("name"))
        for t in body.get("tools", [])
        if isinstance(t, dict) and not t.get("defer_loading")
    }


def needs_tool_search(call: ToolCall, body: JsonObj) -> bool:
    """Whether a real model would first have to fetch ``call.name``'s schema via ToolSearch."""
    offered = {str(t.get("name")) for t in body.get("tools", []) if isinstance(t, dict)}
    return (
        not call.searched and call.name not in loaded_tool_names(body) and "ToolSearch" in offered
    )


def tool_results(body: JsonObj) -> list[str]:
    """The text of every ``tool_result`` block in the conversation, oldest first."""
    out: list[str] = []
    for msg in body.get("messages", []):
        content = msg.get("content")
        if not isinstance(content, list):
            continue
        for block in content:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                out.append(json.dumps(block.get("content")))
    return out


def last_user_text(body: JsonObj) -> str:
    """The text blocks of the last user message (the prompt claude got on stdin)."""
    for msg in reversed(body.get("messages", [])):
        if msg.get("role") != "user":
            continue
        content = msg.get("content")
        if isinstance(content, str):
            return content
        return "\n".join(
            str(b.get("text", ""))
            for b in content
            if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _sse(event: str, data: JsonObj) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class StandIn:
    """The scripted Messages API server. Use as a context manager or call start/stop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, collections.deque[Step | StepFactory]] = {}
        self.requests: list[Recorded] = []
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self.port = 0

    # -- scripting (called from the test thread) ---------------------------------------
    def script(self, key: str, *steps: Step | StepFactory) -> None:
        """Append steps to the model script of API key ``key``."""
        with self._lock:
            self._scripts.setdefault(key, collections.deque()).extend(steps)

    def pending(self, key: str) -> int:
        """How many scripted steps of ``key`` are still unused."""
        with self._lock:
            return len(self._scripts.get(key, ()))

    def received(self, key: str, kind: Kind = Kind.MAIN) -> list[Recorded]:
        """The requests of ``kind`` received with ``key``."""
        with self._lock:
            return [r for r in self.requests if r.key == key and r.kind is kind]

    @property
    def base_url(self) -> str:
        """What to put in ``ANTHROPIC_BASE_URL``."""
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> StandIn:
        """Start serving on 127.0.0.1 on a free port, in a background thread."""
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("API stand-in did not start within 10 s")
        return self

    def stop(self) -> None:
        """Stop the server and its thread."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self, ready: threading.Event) -> None:
        asyncio.run(self._main(ready))

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_route("*", "/{tail:.*}", self._other)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        ready.set()
        await self._stopping.wait()
        await self._runner.cleanup()

    # -- handlers ----------------------------------------------------------------------
    @staticmethod
    def _key(request: web.Request) -> str:
        key = request.headers.get("x-api-key", "")
        if not key:
            key = request.headers.get("authorization", "").removeprefix("Bearer ")
        return key

    async def _count_tokens(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            self.requests.append(Recorded(request.path, self._key(request), body, Kind.SIDE))
        return web.json_response({"input_tokens": 1000})

    async def _other(self, request: web.Request) -> web.Response:
        # Anything claude probes on the side (none seen with nonessential traffic off):
        # answer 404 in the API's error shape so claude treats it as "not available".
        with self._lock:
            self.requests.append(Recorded(request.path, self._key(request), {}, Kind.SIDE))
        return web.json_response(
            {"type": "error", "error": {"type": "not_found_error", "message": "Not found"}},
            status=404,
        )

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body: JsonObj = await request.json()
        key = self._key(request)
        kind = classify(body)
        step: Step
        with self._lock:
            self.requests.append(Recorded(request.path, key, body, kind))
            queue = self._scripts.setdefault(key, collections.deque())
            if kind is Kind.COMPACT:
                step = Text(SUMMARY)
            elif kind is Kind.SIDE:
                step = Text("stand-in side answer")
            elif not queue:
                step = Text("(stand-in: script exhausted)")
            else:
                item = queue.popleft()
                step = (
                    item
                    if isinstance(item, Text | ToolCall | ApiError | Hang | Drop)
                    else item(body)
                )
                if isinstance(step, ToolCall) and needs_tool_search(step, body):
                    # Deferred tool: load its schema first, then call it on the next request.
                    step.searched = True
                    queue.appendleft(step)
                    step = ToolCall(
                        "ToolSearch", {"query": f"select:{step.name}", "max_results": 5}, True
                    )
        if isinstance(step, ApiError):
            return web.json_response(
                {
                    "type": "error",
                    "error": {"type": step.type, "message": step.message},
                    "request_id": f"req_standin{next(self._ids)}",
                },
                status=step.status,
                # x-should-retry: false stops claude's own retries (tests stay fast); the
                # harness's retry policy is what is under test.
                headers={"request-id": "req_standin", "x-should-retry": "false", **step.headers},
            )
        if isinstance(step, Drop) and not body.get("stream"):
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=499)
        model = str(body.get("model", "claude-standin"))
        if not body.get("stream"):
            return web.json_response(self._whole_message(model, step))
        try:
            return await self._stream(request, model, step)
        except ConnectionResetError:
            # claude hung up mid-stream (SIGINT): nothing more to send.
            return web.Response(status=499)

    def _whole_message(self, model: str, step: Step) -> JsonObj:
        content: list[JsonObj]
        if isinstance(step, ToolCall):
            tid = f"toolu_standin{next(self._ids)}"
            content = [{"type": "tool_use", "id": tid, "name": step.name, "input": step.input}]
            stop = "tool_use"
        else:
            content = [{"type": "text", "text": getattr(step, "text", "")}]
            stop = "end_turn"
        return {
            "id": f"msg_standin{next(self._ids)}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }

    async def _stream(self, request: web.Request, model: str, step: Step) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"content-type": "text/event-stream", "cache-control": "no-cache"}
        )
        await resp.prepare(request)
        msg_id = f"msg_standin{next(self._ids)}"
        await resp.write(
            _sse(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": msg_id,
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": 10, "output_tokens": 1},
                    },
                },
            )
        )
        if isinstance(step, ToolCall):
            tid = f"toolu_standin{next(self._ids)}"
            block: JsonObj = {"type": "tool_use", "id": tid, "name": step.name, "input": {}}
            delta: JsonObj = {"type": "input_json_delta", "partial_json": json.dumps(step.input)}
            stop = "tool_use"
        else:
            text = step.text if isinstance(step, Text | Hang | Drop) else ""
            block = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": text}
            stop = "end_turn"
        await resp.write(
            _sse(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": block},
            )
        )
        await resp.write(
            _sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        )
        if isinstance(step, Drop):
            # The connection goes away mid-message, as when a proxy or the network drops it.
            if request.transport is not None:
                request.transport.abort()
            return resp
        if isinstance(step, Hang):
            step.started.set()
            if not await self._hold_open(request, resp, step.max_seconds):
                return resp
        await resp.write(_sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
        await resp.write(
            _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": 5},
                },
            )
        )
        await resp.write(_sse("message_stop", {"type": "message_stop"}))
        await resp.write_eof()
        return resp

    async def _hold_open(
        self, request: web.Request, resp: web.StreamResponse, max_seconds: float
    ) -> bool:
        """Ping until the deadline (True) or until the client hung up (False)."""
        assert self._stopping is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_seconds
        while loop.time() < deadline and not self._stopping.is_set():
            if request.transport is None or request.transport.is_closing():
                return False
            await resp.write(_sse("ping", {"type": "ping"}))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 0.2)
        return True


def claude_env(server: StandIn, home: Path, key: str) -> dict[str, str]:
    """An environment that runs the real claude CLI isolated, against ``server``."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": server.base_url,
        "ANTHROPIC_API_KEY": key,
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }

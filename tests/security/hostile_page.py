"""A page a hostile agent serves on a local port of its own: its script tries every way a
page in the operator's browser could reach the operator's credential or authority, and
reports what it got back to its own server."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from hyperhive.http import BoundApp, serve_app

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>totally harmless</title></head>
<body><h1>nothing to see</h1>
<script id="targets" type="application/json">{targets}</script>
<script src="/evil.js"></script></body></html>
"""

SCRIPT = Path(__file__).with_name("hostile_page.js").read_text()


@dataclass
class HostilePage:
    """The hostile server: what its page reported, and every request's headers."""

    targets: dict[str, Any]
    reports: list[dict[str, Any]] = field(default_factory=list)
    seen_headers: list[dict[str, str]] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            self.seen_headers.append({**request.headers, "path": request.path_qs})
            response: web.StreamResponse = await handler(request)
            return response

        app = web.Application(middlewares=[web.middleware(record)])

        async def page(_: web.Request) -> web.Response:
            text = PAGE.format(targets=json.dumps(self.targets).replace("<", "\\u003c"))
            return web.Response(text=text, content_type="text/html")

        async def script(_: web.Request) -> web.Response:
            return web.Response(text=SCRIPT, content_type="text/javascript")

        async def report(request: web.Request) -> web.Response:
            data = json.loads(await request.text())
            self.reports.append(data)
            if data.get("what") == "done":
                self.done.set()
            return web.Response(text="ok")

        app.router.add_get("/", page)
        app.router.add_get("/evil.js", script)
        app.router.add_post("/report", report)
        return app

    async def serve(self, port: int = 0) -> BoundApp:
        return await serve_app(self.app(), "127.0.0.1", port, delays=[])

    def of(self, what: str) -> list[dict[str, Any]]:
        return [r for r in self.reports if r.get("what") == what]

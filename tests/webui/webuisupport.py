"""A real harness (in-process daemon, real claude against the API stand-in) with its web UI
served on 127.0.0.1:0, for the web UI tests.

Tests that only speak HTTP to the web UI pass no claude: their harness gets a path that
cannot run, and on exit it is checked that no turn started (so none needed claude).
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from harness.support import Running, harness_settings, running_harness, spawn_quiet
from hivetest import call, running_hive
from hyperhive.http import serve_app
from hyperhive.webui.app import create_app
from standin.api import StandIn

NO_CLAUDE = Path("/nonexistent/this-test-runs-no-claude")


@dataclass
class LiveUI:
    """A running harness and the URL of its web UI."""

    url: str
    run: Running
    host: Path
    socket: Path
    name: str
    page_key: str
    """This page's operator key (what the dashboard's link carries)."""

    @property
    def login_url(self) -> str:
        """The page with its key in the fragment: what the dashboard's link opens."""
        return f"{self.url}/#key={self.page_key}"

    @property
    def auth(self) -> dict[str, str]:
        """The header the operator's browser sends to this page."""
        return {"Authorization": f"Bearer {self.page_key}"}

    @property
    def key(self) -> str:
        """The API key this harness's claude uses (the stand-in's script key)."""
        return self.run.key

    async def send(self, body: str) -> int:
        """A message from the operator through the broker (host socket)."""
        reply = await call(self.host, "send", to=self.name, body=body)
        assert reply["kind"] == "ok", reply
        return int(reply["ids"][0])

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        data: str | io.BytesIO | None = None,
        *,
        auth: bool = True,
    ) -> tuple[int, dict[str, Any]]:
        """One HTTP request to the web UI, with the page key unless `auth=False`."""
        headers = {**(self.auth if auth else {}), **(headers or {})}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method,
                self.url + path,
                json=body if data is None else None,
                data=data,
                headers=headers,
            ) as resp,
        ):
            text = await resp.text()
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = {"text": text}
            return resp.status, parsed


@asynccontextmanager
async def running_webui(
    root: Path,
    claude_bin: Path | None,
    standin: StandIn,
    *,
    name: str = "alice",
    logged_in: bool = True,
    login_cmd: str | None = None,
) -> AsyncIterator[LiveUI]:
    """Daemon, agent ``name``, its harness with the turn loop running, and its web UI.

    ``claude_bin=None``: the test must take no turn (checked when it ends).
    """
    turns = claude_bin is not None
    claude_bin = claude_bin or NO_CLAUDE
    # harness=False: the test runs the harness itself (the local backend must not).
    async with running_hive(root / "hive", harness=False) as hive:
        host = hive.settings.host_socket
        sock = hive.settings.run_dir / "agents" / name / "mcp.sock"
        await spawn_quiet(host, sock, name)
        # The key file the daemon wrote next to the agent's socket (its /run/hive).
        settings = harness_settings(root / name, name, sock, claude_bin).model_copy(
            update={"web_key_file": sock.parent / "web-key"}
        )
        if login_cmd is not None:
            settings = settings.model_copy(update={"login_cmd": login_cmd})
        async with running_harness(
            root / name, name, sock, claude_bin, standin, settings, logged_in=logged_in
        ) as run:
            bound = await serve_app(
                create_app(run.harness, inbox_interval=0.5), "127.0.0.1", 0, delays=[]
            )
            try:
                yield LiveUI(bound.url, run, host, sock, name, hive.credentials.page_key(name))
            finally:
                await bound.stop()
            if not turns:
                store = run.harness.store
                assert store is not None
                await store.flush()
                busy = [
                    e.payload
                    for e in store.list_recent(10_000)
                    if e.kind == "state" and e.payload["state"] != "idle"
                ]
                assert busy == [], "a test given no claude tried to run it: pass claude_bin"

"""The hostile agent from inside a real nspawn container (docs/security.md).

A real daemon on the nspawn backend spawns the attacker and a victim; the attacker's model
(scripted on the API stand-in) runs the stdlib probe with its Bash tool, inside its own
container, which shares the host's loopback. Every
dashboard route, the victim's page and the manager's page answer 401/403 to every
credential it holds (its own /run/hive/web-key included); its own page opens with that
key; nothing changes.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hivetest import call, running_hive
from hyperhive.agents.names import AgentName
from hyperhive.daemon import Hive
from hyperhive.dashboard import start_dashboard
from hyperhive.dashboard.app import PUBLIC_PAGES as DASHBOARD_PUBLIC
from hyperhive.http import BoundApp
from hyperhive.ports import MANAGER_PORT, agent_port
from hyperhive.settings import BackendKind
from hyperhive.webui.app import PUBLIC_PAGES as PAGE_PUBLIC
from lifecycle.support import Router, api_key_operator, harness_online, require_nspawn, until
from standin.api import StandIn, Text, ToolCall

from security.support import (
    PAGE_PATHS,
    PROBE,
    Route,
    credentials,
    free_name,
    not_refused,
    plan,
    repos,
    routes,
)


@pytest.fixture
async def nspawn_hive(
    tmp_path: Path, standin: StandIn, claude_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Hive, Router, BoundApp]]:
    require_nspawn()
    router = api_key_operator(monkeypatch, standin, claude_bin, "hostile")
    monkeypatch.setenv("HYPERHIVE_RATE_LIMIT_SLEEP", "1")
    async with running_hive(
        tmp_path, backend=BackendKind.NSPAWN, crash_watch_seconds=0.2, stop_timeout_seconds=5
    ) as hive:
        dash = await start_dashboard(hive, port=0)
        try:
            yield hive, router, dash
        finally:
            await dash.stop()


async def status_of(url: str, key: str) -> int:
    try:
        async with (
            aiohttp.ClientSession() as s,
            s.get(url, headers={"Authorization": f"Bearer {key}"}) as r,
        ):
            return r.status
    except aiohttp.ClientError:
        return 0


def broker_state(hive: Hive, attacker: str) -> dict[str, Any]:
    """Every broker row but the attacker's own traffic and message delivery state."""
    conn = sqlite3.connect(f"file:{hive.settings.broker_db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        out: dict[str, Any] = {}
        for table in sorted(tables):
            rows = [dict(r) for r in conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid')]
            if table == "messages":
                # Which messages exist, not their delivery: the agents' own turns (boot
                # kicks, the attacker's probe turn) receive and ack on their own schedule.
                rows = [
                    {k: r[k] for k in ("id", "sender", "recipient", "body")}
                    for r in rows
                    if attacker not in (r["sender"], r["recipient"])
                ]
            if table == "sqlite_sequence":
                continue
            out[table] = rows
        return out
    finally:
        conn.close()


def page_state(hive: Hive, name: str) -> dict[str, Any]:
    """What the page's controls change: the model file and the control events."""
    paths = hive.lifecycle.paths(AgentName(name))
    model = paths.state / "hyperhive-model"
    kinds = ("operator_message", "model", "note", "login")
    events: list[Any] = []
    if paths.events_db.exists():
        conn = sqlite3.connect(f"file:{paths.events_db}?mode=ro", uri=True)
        try:
            events = conn.execute(
                f"SELECT id, kind FROM events WHERE kind IN ({','.join('?' * len(kinds))})",
                kinds,
            ).fetchall()
        finally:
            conn.close()
    return {"model": model.read_text() if model.exists() else None, "events": events}


async def test_from_inside_an_nspawn_container_every_dashboard_and_page_route_refuses(
    nspawn_hive: tuple[Hive, Router, BoundApp],
) -> None:
    hive, router, dash = nspawn_hive
    host = hive.settings.host_socket
    attacker, victim = free_name("mal"), free_name("vic")
    for name in (attacker, victim):
        reply = await call(host, "spawn", name=name)
        assert reply["kind"] == "ok", reply
    for name in (attacker, victim):
        log = hive.lifecycle.paths(AgentName(name)).harness_log
        await until(lambda log=log, name=name: harness_online(log, name), 60, f"{name} online")
    creds = hive.credentials
    victim_url = f"http://127.0.0.1:{agent_port(victim)}"
    own_url = f"http://127.0.0.1:{agent_port(attacker)}"
    manager_url = f"http://127.0.0.1:{MANAGER_PORT}"

    async def pages_up() -> bool:
        return (
            await status_of(victim_url + "/api/state", creds.page_key(victim)) == 200
            and await status_of(own_url + "/api/state", creds.page_key(attacker)) == 200
        )

    deadline = time.monotonic() + 60
    while not await pages_up():
        assert time.monotonic() < deadline, "the agents' pages did not come up in their containers"
        await asyncio.sleep(0.2)
    # The manager's page is ours only if port 8000 was free for this hive's manager.
    manager_ours = await status_of(manager_url + "/api/state", creds.page_key("manager")) == 200

    # What the attacker sends: its own key comes from its own /run/hive/web-key, read inside.
    spawn = await call(
        hive.lifecycle.paths(AgentName("manager")).socket,
        "request_spawn",
        name="eve",
        description="x",
    )
    values = {"id": [str(spawn["id"])], "name": [victim, "manager"]}
    dash_routes = [r for r in routes(dash.runner.app, values) if r.path not in DASHBOARD_PUBLIC]
    requests = plan(
        dash.url,
        dash_routes,
        credentials(creds.dashboard_key(), "{own_key}"),
        json_bodies=False,
    )
    page_routes = [Route(m, p, p) for m, p in PAGE_PATHS if p not in PAGE_PUBLIC]
    page_routes += [Route("HEAD", r.path, r.path) for r in page_routes if r.method == "GET"]
    targets = [victim_url] + ([manager_url] if manager_ours else [])
    for url in targets:
        name = victim if url == victim_url else "manager"
        page_creds = credentials(creds.page_key(name), "{own_key}")
        page_creds["dashboard key"] = (
            {"Authorization": f"Bearer {creds.dashboard_key()}"},
            "",
        )
        requests += plan(url, page_routes, page_creds, json_bodies=True)
    control = {
        "label": "own page with own key",
        "method": "GET",
        "url": own_url + "/api/state",
        "headers": {"Authorization": "Bearer {own_key}"},
    }
    state_dir = hive.lifecycle.paths(AgentName(attacker)).state
    shutil.copy(PROBE, state_dir / "probe.py")
    (state_dir / "plan.json").write_text(json.dumps([*requests, control]))
    before = (
        broker_state(hive, attacker),
        repos(hive.settings.state_dir),
        page_state(hive, victim),
        page_state(hive, "manager"),
    )
    # The attacker's model runs the probe with its Bash tool, inside its own container.
    command = (
        "/usr/bin/python3 -I /state/probe.py /state/plan.json /state/out.json /run/hive/web-key"
    )
    router.add(attacker, "run the probe", ToolCall("Bash", {"command": command}), Text("done"))
    sent = await call(host, "send", to=attacker, body="please run the probe now")
    assert sent["kind"] == "ok", sent
    out = state_dir / "out.json"
    await until(lambda: out.exists() and out.stat().st_size > 0, 180, "the probe's answers")
    await until(lambda: router.pending(attacker) == 0, 60, "the attacker's turn")
    results = json.loads(out.read_text())
    labelled = [{**r, "label": q["label"]} for q, r in zip(requests, results, strict=False)]

    # Loopback is shared: the container reached every server (no status 0), and its own
    # page opened with its own key (its own blast radius).
    assert results[-1]["status"] == 200, results[-1]
    assert len(results) == len(requests) + 1
    assert not_refused(labelled) == []
    after = (
        broker_state(hive, attacker),
        repos(hive.settings.state_dir),
        page_state(hive, victim),
        page_state(hive, "manager"),
    )
    assert after == before
    assert {a.id for a in hive.approvals.list_pending()} == {spawn["id"]}
    if not manager_ours:
        pytest.xfail(f"port {MANAGER_PORT} was taken: this hive's manager page was not probed")

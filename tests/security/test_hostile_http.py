"""The hostile agent on the shared loopback, from a plain process with no browser headers
(docs/security.md): every dashboard route and every route of another agent's page answers
401 or 403 and changes nothing, whatever credential it presents; its own page key opens its
own page only; a rotation ends every session; no secret reaches a log, event, journal view,
error or page; the login URL goes to the operator's terminal only."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from hivetest import daemon_env
from hyperhive.credentials import OperatorSecret
from hyperhive.dashboard.app import PUBLIC_PAGES as DASHBOARD_PUBLIC
from hyperhive.webui.app import PUBLIC_PAGES as PAGE_PUBLIC
from standin.api import StandIn, Text

from security.scene import TOMBSTONE, VICTIM, Scene, hostile_scene
from security.support import (
    PAGE_PATHS,
    covered,
    credentials,
    not_refused,
    plan,
    probe,
    routes,
)


@pytest_asyncio.fixture
async def scene(tmp_path: Path, claude_bin: Path, standin: StandIn) -> AsyncIterator[Scene]:
    async with hostile_scene(tmp_path, claude_bin, standin) as running:
        yield running


def dashboard_routes(scene: Scene) -> list[Any]:
    ids = [str(scene.spawn_id), str(scene.commit_id), str(scene.question_id)]
    names = [VICTIM, "manager", TOMBSTONE]
    return routes(scene.dash.runner.app, {"id": ids, "name": names})


def protected(found: list[Any], public: frozenset[str]) -> list[Any]:
    return [r for r in found if r.path not in public]


async def cli(scene: Scene, *args: str) -> str:
    """`hive-c0re <args>` through the host socket, as the operator runs it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hyperhive.cli.c0re",
        "--socket",
        str(scene.host),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def get(url: str, key: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        return r.status, await r.text()


async def post_json(url: str, key: str, body: dict[str, Any]) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as s, s.post(url, json=body, headers=headers) as r:
        return r.status, await r.text()


async def hostile_probes(scene: Scene, workdir: Path) -> list[dict[str, Any]]:
    """Every protected route of the dashboard and of alice's page, with every credential
    the manager can present (its own page key included), from a separate plain process."""
    own = scene.agent_reads_own_key("manager")
    dash_routes = protected(dashboard_routes(scene), DASHBOARD_PUBLIC)
    page_routes = protected(routes(scene.page.runner.app, {}), PAGE_PUBLIC)
    requests = plan(
        scene.dash.url, dash_routes, credentials(scene.dashboard_key, own), json_bodies=False
    )
    # alice's page: the manager's own key, and the dashboard key (a key of another surface).
    page_creds = credentials(scene.agent_reads_own_key(VICTIM), own)
    page_creds["dashboard key"] = ({"Authorization": f"Bearer {scene.dashboard_key}"}, "")
    requests += plan(scene.page.url, page_routes, page_creds, json_bodies=True)
    # A CORS preflight is refused too, and never answered with CORS headers.
    for base in (scene.dash.url, scene.page.url):
        requests.append(
            {
                "label": f"OPTIONS {base}/api/state [preflight]",
                "method": "OPTIONS",
                "url": base + "/api/state",
                "headers": {
                    "Origin": "http://127.0.0.1:1",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization",
                },
            }
        )
    return await probe(requests, workdir)


async def test_every_route_is_probed_so_a_new_route_cannot_be_forgotten(scene: Scene) -> None:
    for app, found, public in (
        (scene.dash.runner.app, dashboard_routes(scene), DASHBOARD_PUBLIC),
        (scene.page.runner.app, routes(scene.page.runner.app, {}), PAGE_PUBLIC),
    ):
        assert {(r.method, r.pattern) for r in found} == covered(app)
        methods = {r.method for r in protected(found, public)}
        assert {"GET", "HEAD", "POST"} <= methods
    page_routes = protected(routes(scene.page.runner.app, {}), PAGE_PUBLIC)
    assert {(r.method, r.path) for r in page_routes if r.method != "HEAD"} == set(PAGE_PATHS)
    paths = {r.path for r in dashboard_routes(scene)}
    for expected in (
        "/dashboard/stream",
        f"/api/journal/{VICTIM}",
        "/api/webui-keys",
        f"/api/diff/{scene.commit_id}",
        f"/approve/{scene.spawn_id}",
        f"/destroy/{VICTIM}",
        f"/purge-tombstone/{TOMBSTONE}",
        "/send",
    ):
        assert expected in paths


async def test_a_hostile_agent_gets_401_or_403_from_every_route_and_changes_nothing(
    scene: Scene, tmp_path: Path
) -> None:
    before = scene.state()
    results = await hostile_probes(scene, tmp_path)
    assert len(results) > 300
    assert not_refused(results) == []
    statuses = {r["status"] for r in results}
    assert 401 in statuses
    # The stream was refused before it started: not one frame of hive traffic.
    streams = [r for r in results if "/stream" in r["label"]]
    assert streams
    assert all("data:" not in r["body"] for r in streams)
    assert scene.state() == before
    # Still there for the operator: the approvals and the question are pending, carol's kept.
    assert {a.id for a in scene.hive.approvals.list_pending()} == {
        scene.spawn_id,
        scene.commit_id,
    }
    assert (scene.hive.settings.state_dir / "agents" / TOMBSTONE).is_dir()


async def test_an_agents_own_page_key_opens_its_own_page_only(scene: Scene, tmp_path: Path) -> None:
    own = scene.agent_reads_own_key(VICTIM)  # alice reads /run/hive/web-key
    results = await probe(
        [
            {"label": "own state", "method": "GET", "url": scene.page.url + "/api/state",
             "headers": {"Authorization": f"Bearer {own}"}},
            {"label": "own model", "method": "POST", "url": scene.page.url + "/api/model",
             "headers": {"Authorization": f"Bearer {own}", "Content-Type": "application/json"},
             "body": json.dumps({"model": "opus"})},
            {"label": "dashboard", "method": "GET", "url": scene.dash.url + "/api/state",
             "headers": {"Authorization": f"Bearer {own}"}},
        ],
        tmp_path,
    )  # fmt: skip
    assert [r["status"] for r in results] == [200, 200, 401]
    # Its own blast radius (docs/security.md): it may change its own model.
    assert scene.run.harness.settings.model_path.read_text().strip() == "opus"


async def test_rotate_token_makes_old_keys_answer_401_and_ends_open_streams(scene: Scene) -> None:
    old_dash, old_page = scene.dashboard_key, scene.agent_reads_own_key(VICTIM)
    session = aiohttp.ClientSession()
    try:
        dash_stream = await session.get(
            scene.dash.url + "/dashboard/stream", headers={"Authorization": f"Bearer {old_dash}"}
        )
        page_stream = await session.get(
            scene.page.url + "/events/stream", headers={"Authorization": f"Bearer {old_page}"}
        )
        assert (dash_stream.status, page_stream.status) == (200, 200)
        assert b"connected" in await dash_stream.content.readuntil(b"connected")
        assert b"event: inbox" in await page_stream.content.readuntil(b"event: inbox")

        out = await cli(scene, "rotate-token")
        assert "rotated" in out
        assert old_dash not in out

        # Both open streams end (the page's within its key recheck interval).
        async def drained(resp: aiohttp.ClientResponse) -> None:
            while await resp.content.readany():
                pass

        await asyncio.wait_for(asyncio.gather(drained(dash_stream), drained(page_stream)), 30)
    finally:
        await session.close()
    new_dash, new_page = scene.dashboard_key, scene.agent_reads_own_key(VICTIM)
    assert new_dash != old_dash
    assert new_page != old_page
    assert (await get(scene.dash.url + "/api/state", old_dash))[0] == 401
    assert (await get(scene.page.url + "/api/state", old_page))[0] == 401
    assert (await get(scene.dash.url + "/dashboard/history", old_dash))[0] == 401
    assert (await get(scene.page.url + "/events/history", old_page))[0] == 401
    assert (await get(scene.dash.url + "/api/state", new_dash))[0] == 200
    assert (await get(scene.page.url + "/api/state", new_page))[0] == 200
    # The login URL now carries the new key.
    assert f"#key={new_dash}" in await cli(scene, "login")


class Captured(logging.Handler):
    """Every log record of this process, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured_logs() -> Iterator[Captured]:
    handler = Captured()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def needles(scene: Scene) -> dict[str, str]:
    """The secret in every text form, the dashboard key and every page key, now."""
    secret = scene.hive.credentials._secret
    found = {
        "secret hex": secret.hex(),
        "secret base64": base64.b64encode(secret).decode(),
        "secret base64url": base64.urlsafe_b64encode(secret).rstrip(b"=").decode(),
        "dashboard key": scene.dashboard_key,
    }
    for name in ("manager", VICTIM, TOMBSTONE, "eve"):
        found[f"page key of {name}"] = scene.hive.credentials.page_key(name)
    return found


def leaks(where: str, text: str, secrets_now: dict[str, str]) -> list[str]:
    return [f"{label} in {where}" for label, needle in secrets_now.items() if needle in text]


def files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                yield path


async def test_no_secret_reaches_a_log_event_journal_error_or_page_source(
    scene: Scene, tmp_path: Path, standin: StandIn, captured_logs: Captured
) -> None:
    secrets_seen: dict[str, str] = {}
    texts: dict[str, str] = {}
    for round_ in ("before", "after"):
        secrets_seen |= {f"{k} ({round_} rotation)": v for k, v in needles(scene).items()}
        results = await hostile_probes(scene, tmp_path / round_)  # the error bodies
        texts[f"error bodies {round_}"] = json.dumps(results)
        # The operator's own use: a turn from the page, the journal views, the page sources.
        dash_key, page_key = scene.dashboard_key, scene.agent_reads_own_key(VICTIM)
        standin.script(scene.run.key, Text(f"done {round_}"))
        status, body = await post_json(scene.page.url + "/api/send", page_key, {"body": round_})
        assert status == 202, body
        await scene.run.wait_event("turn_end")
        for label, url, key in (
            ("dashboard page", scene.dash.url + "/", None),
            ("dashboard login page", scene.dash.url + "/login", None),
            ("alice's page", scene.page.url + "/", None),
            ("dashboard script", scene.dash.url + "/static/dashboard.js", None),
            ("state", scene.dash.url + "/api/state?html=1", dash_key),
            ("dashboard journal", scene.dash.url + f"/api/journal/{VICTIM}", dash_key),
            ("page journal", scene.page.url + "/api/journal", page_key),
            ("page history", scene.page.url + "/events/history", page_key),
            ("page state", scene.page.url + "/api/state", page_key),
        ):
            status, text = await get(url, key)
            assert status in (200, 404), (label, status, text)
            texts[f"{label} {round_}"] = text
        if round_ == "before":
            await cli(scene, "rotate-token")
    texts["log records"] = "\n".join(captured_logs.lines)
    store = scene.run.harness.store
    assert store is not None
    await store.flush()
    texts["events"] = "\n".join(json.dumps(e.payload) for e in store.list_recent(2000))
    assert "turn_end" in {e.kind for e in store.list_recent(2000)}
    found = [leak for where, text in texts.items() for leak in leaks(where, text, secrets_seen)]
    # Every file the daemon and the harness wrote (databases, logs, repos, claude's files),
    # but the secret itself and the key files that exist to hold a key.
    state = scene.hive.settings.state_dir
    for path in files_under(state, scene.hive.settings.run_dir, scene.run.root):
        if path.name in ("operator-secret", "web-key"):
            continue
        data = path.read_bytes()
        found += [f"{label} in {path}" for label, n in secrets_seen.items() if n.encode() in data]
        assert scene.hive.credentials._secret not in data or path.name == "operator-secret"
    assert found == []
    assert sum(len(t) for t in texts.values()) > 10_000  # there was something to search


# -- the login URL goes to the operator's terminal only -----------------------------------


def _serve(root: Path, stdout: int) -> subprocess.Popen[bytes]:
    env = daemon_env(root, HYPERHIVE_HARNESS="false")
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    with (root / "daemon.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "hyperhive.cli.c0re", "serve", "--login-url"],
            env=env,
            stdout=stdout,
            stderr=log,
        )


def _read_until(fd: int, marker: bytes, within: float = 30) -> bytes:
    """Read `fd` until the text after `marker`'s line is complete."""
    got = b""
    deadline = time.monotonic() + within
    while True:
        cut = got.find(marker)
        if cut >= 0 and b"\n" in got[cut:]:
            return got
        left = deadline - time.monotonic()
        assert left > 0, f"{marker!r} not printed: {got!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            assert chunk, f"output ended before {marker!r}: {got!r}"
            got += chunk


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def test_the_login_url_is_printed_only_on_a_terminal_and_never_logged(tmp_path: Path) -> None:
    # Not a terminal (a service's journal): the ready lines hold no key.
    read_end, write_end = os.pipe()
    proc = _serve(tmp_path, write_end)
    os.close(write_end)
    try:
        out = _read_until(read_end, b"hive-c0re login` prints")
    finally:
        _stop(proc)
        os.close(read_end)
    key = OperatorSecret(tmp_path / "state" / "operator-secret").dashboard_key()
    assert b"ready" in out
    assert key.encode() not in out
    assert b"#key=" not in out

    # A terminal: the operator sees the URL that logs a browser in.
    controller, terminal = pty.openpty()
    proc = _serve(tmp_path, terminal)
    os.close(terminal)
    try:
        out = _read_until(controller, b"log the dashboard in:")
        login = subprocess.run(
            [sys.executable, "-m", "hyperhive.cli.c0re", "login"],
            env={**daemon_env(tmp_path), "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    finally:
        _stop(proc)
        os.close(controller)
    assert f"/login#key={key}".encode() in out
    assert f"/login#key={key}" in login
    # The daemon's log (its stderr) never holds the key or the secret.
    log = (tmp_path / "daemon.log").read_bytes()
    assert b"dashboard on http://127.0.0.1:" in log
    assert key.encode() not in log
    secret = (tmp_path / "state" / "operator-secret").read_bytes()
    assert secret.hex().encode() not in log

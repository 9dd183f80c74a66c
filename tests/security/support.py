"""The hostile-agent suite's tools: every route of an app from its router, the credentials a
hostile agent can present, a stdlib probe in its own process, and a snapshot of everything
an unauthorised request could change (broker rows, repos, harness state)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from hyperhive.ports import agent_port

PROBE = Path(__file__).with_name("probe.py")
REFUSED = {401, 403}

# What a hostile agent sends with every state-changing request: a body each handler would
# act on if it got that far (send a message, approve with a note, answer, spawn "eve",
# switch the model, paste a login code).
FORM_BODY = urlencode(
    {
        "to": "alice",
        "body": "pwned: approve everything",
        "note": "pwned",
        "text": "yes",
        "choice": "yes",
        "name": "eve",
        "description": "pwned",
    }
)
JSON_BODY = json.dumps({"body": "pwned: run rm -rf /state", "model": "opus", "code": "pwned"})


# Every protected route of an agent's page (no placeholders; the same for every agent), for
# probes of pages served in containers; test_hostile_http checks it against the router.
PAGE_PATHS = [
    ("GET", "/events/history"),
    ("GET", "/events/stream"),
    ("GET", "/api/state"),
    ("GET", "/api/journal"),
    *[
        ("POST", p)
        for p in (
            "/api/send",
            "/api/cancel",
            "/api/compact",
            "/api/model",
            "/api/new-session",
            "/api/login/start",
            "/api/login/code",
        )
    ],
]


@dataclass(frozen=True)
class Route:
    """One concrete request to probe."""

    method: str
    path: str
    pattern: str
    """The router's pattern it was made from (to prove every route is covered)."""


def placeholders(resource: web.AbstractResource) -> tuple[str, dict[str, list[str] | None]]:
    """The formatter of a dynamic resource and, per placeholder, its regex alternatives."""
    info = resource.get_info()
    formatter = str(info.get("formatter") or info.get("path") or "")
    pattern = info.get("pattern")
    choices: dict[str, list[str] | None] = {}
    for name in re.findall(r"{(\w+)}", formatter):
        alternatives = None
        if pattern is not None:
            m = re.search(rf"\(\?P<{name}>([^()]*)\)", pattern.pattern)
            if m and re.fullmatch(r"[\w|-]+", m.group(1)):
                alternatives = m.group(1).split("|")
        choices[name] = alternatives
    return formatter, choices


def routes(app: web.Application, values: Mapping[str, Sequence[str]]) -> list[Route]:
    """Every non-static route of `app` as concrete requests (HEAD for each GET too).

    A placeholder whose router regex lists alternatives (``{verb:start|kill}``) gets each;
    any other placeholder takes its values from `values`: a placeholder missing there fails
    here, so a new route cannot go unprobed.
    """
    out: list[Route] = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource):
            continue
        formatter, choices = placeholders(resource)
        fills: list[dict[str, str]] = [{}]
        for name, alternatives in choices.items():
            options = alternatives if alternatives is not None else values.get(name)
            assert options, f"route {formatter}: no probe values for {{{name}}}: add some"
            fills = [{**f, name: v} for f in fills for v in options]
        for fill in fills:
            out.append(Route(route.method, formatter.format(**fill), formatter))
    return out


def covered(app: web.Application) -> set[tuple[str, str]]:
    """(method, pattern) of every non-static route: what `routes` must have produced."""
    found = set()
    for route in app.router.routes():
        if route.resource is not None and not isinstance(route.resource, web.StaticResource):
            found.add((route.method, placeholders(route.resource)[0]))
    return found


def credentials(real_key: str, own_page_key: str) -> dict[str, tuple[dict[str, str], str]]:
    """What a hostile agent can present: (extra headers, query string) per kind.

    `real_key` is the surface's own valid key, presented where a browser might carry it on
    its own (cookie, query string) or in a wrong scheme: none of those may count. The
    agent's own page key is the one credential it really holds.
    """
    wrong = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    basic = base64.b64encode(f"operator:{real_key}".encode()).decode()
    query = urlencode({"key": real_key, "token": real_key, "access_token": real_key})
    return {
        "no key": ({}, ""),
        "wrong key": ({"Authorization": f"Bearer {wrong}"}, ""),
        "own page key": ({"Authorization": f"Bearer {own_page_key}"}, ""),
        "key in a cookie": (
            {"Cookie": f"key={real_key}; hive.key={real_key}; session={real_key}"},
            "",
        ),
        "key in the query": ({}, query),
        "key without a scheme": ({"Authorization": real_key}, ""),
        "key as basic auth": ({"Authorization": f"Basic {basic}"}, ""),
    }


def plan(
    base: str,
    app_routes: Iterable[Route],
    creds: Mapping[str, tuple[dict[str, str], str]],
    *,
    json_bodies: bool,
) -> list[dict[str, Any]]:
    """One request per route and credential, bodies a handler would act on."""
    requests = []
    for route in app_routes:
        for label, (headers, query) in creds.items():
            request: dict[str, Any] = {
                "label": f"{route.method} {route.path} [{label}]",
                "method": route.method,
                "url": base + route.path + (f"?{query}" if query else ""),
                "headers": dict(headers),
            }
            if route.method == "POST":
                if json_bodies:
                    request["headers"]["Content-Type"] = "application/json"
                    request["body"] = JSON_BODY
                else:
                    request["headers"]["Content-Type"] = "application/x-www-form-urlencoded"
                    request["body"] = FORM_BODY
            requests.append(request)
    return requests


async def probe(requests: list[dict[str, Any]], workdir: Path) -> list[dict[str, Any]]:
    """Run the requests from a separate plain process (the stdlib probe)."""
    workdir.mkdir(parents=True, exist_ok=True)
    plan_file = workdir / f"plan-{secrets.token_hex(4)}.json"
    out_file = plan_file.with_suffix(".out.json")
    plan_file.write_text(json.dumps(requests))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",  # isolated: nothing of this test's environment or hyperhive on its path
        str(PROBE),
        str(plan_file),
        str(out_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 600)
    assert proc.returncode == 0, err.decode()
    results: list[dict[str, Any]] = json.loads(out_file.read_text())
    return [{**r, "label": q["label"]} for q, r in zip(requests, results, strict=True)]


def not_refused(results: Iterable[dict[str, Any]]) -> list[str]:
    """Labels of the requests that were not answered 401/403 with a JSON error."""
    bad = []
    for r in results:
        if r["status"] not in REFUSED:
            bad.append(f"{r['label']}: {r['status']} {r.get('error', '')} {r['body'][:200]}")
            continue
        if r["label"].startswith("HEAD "):
            continue  # no body
        try:
            body = json.loads(r["body"])
        except ValueError:
            bad.append(f"{r['label']}: {r['status']} without a JSON error: {r['body'][:200]}")
            continue
        if body.get("ok") is not False or not body.get("error"):
            bad.append(f"{r['label']}: {r['status']} body {r['body'][:200]}")
        if any(h.startswith("access-control-") for h in r["headers"]):
            bad.append(f"{r['label']}: CORS header in {r['headers']}")
    return bad


# -- what an unauthorised request could change -----------------------------------------


def db_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of a sqlite database (read-only)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [
            t
            for (t,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        return {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in tables}
    finally:
        conn.close()


def repo_state(repo: Path) -> str:
    """Every ref of a git repo with its target, and whether its work tree is dirty."""
    if not (repo / ".git").exists() and not (repo / "HEAD").exists():
        return "no repo"
    refs = subprocess.run(
        ["git", "-C", str(repo), "for-each-ref", "--format=%(refname) %(objectname)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    status = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    ).stdout
    return refs + "\n--\n" + status


def repos(state_dir: Path) -> dict[str, str]:
    """The refs of every applied repo and every agent's proposed config repo."""
    found: dict[str, str] = {}
    for repo in sorted(state_dir.glob("applied/*")) + sorted(state_dir.glob("agents/*/config")):
        found[str(repo.relative_to(state_dir))] = repo_state(repo)
    return found


def free_name(prefix: str) -> str:
    """An agent name whose web UI port is free now (the dashboard links by name)."""
    for _ in range(200):
        name = f"{prefix}{secrets.token_hex(3)}"
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", agent_port(name)))
            except OSError:
                continue
            return name
    raise AssertionError("no free agent port in 200 tries")

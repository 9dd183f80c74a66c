"""Property tests of every state-changing dashboard route (SPEC §11): real daemon, real HTTP.

For arbitrary path parameters, form fields (url-encoded, or raw bytes under non-form content
type) and Origin / Sec-Fetch-Site headers, the dashboard must: never answer 500; when it
refuses (4xx/503), say why in a non-empty `error` and leave the database as it was; stay
up (`/api/state` answers afterwards). A cross-origin write is always refused.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import pytest
from hivetest import DaemonProcess
from hypothesis import given
from hypothesis import strategies as st
from rel_support import (
    FUZZ,
    LineClient,
    settle,
    state_change,
    state_digest,
    state_rows,
)

ROUTES = [
    "/approve/{}",
    "/deny/{}",
    "/answer-question/{}",
    "/cancel-question/{}",
    "/purge-tombstone/{}",
    "/revive/{}",
    "/request-spawn",
    "/send",
    "/start/{}",
    "/kill/{}",
    "/restart/{}",
    "/rebuild/{}",
    "/destroy/{}",
]
FORM_KEYS = ["note", "choice", "text", "name", "description", "to", "body"]
PROTECTED = {"ana"}
"""The seeded agent whose question the fuzzer answers: it must stay alive."""

params = st.one_of(
    st.sampled_from(["1", "2", "0", "-1", "ana", "ben", "manager", "nobody", "../x", "A"]),
    st.integers(0, 10**20).map(str),
    st.text(max_size=30),
)
form_values = st.one_of(
    st.sampled_from(["ana", "ben", "manager", "operator", "*", "yes", "", " ", "../x"]),
    st.text(max_size=60),
    st.text(min_size=4001, max_size=4100),
)
forms = st.lists(
    st.tuples(st.sampled_from(FORM_KEYS) | st.text(max_size=8), form_values), max_size=5
)
bodies = st.one_of(
    forms.map(lambda pairs: ("application/x-www-form-urlencoded", urlencode(pairs).encode())),
    # Raw bytes, under the form content types too (undecodable or malformed bodies).
    st.tuples(
        st.sampled_from(
            [
                "application/json",
                "text/plain",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=xyz",
            ]
        ),
        st.binary(max_size=512),
    ),
)
origins = st.sampled_from(["same", "none", "cross", "null"])
fetch_sites = st.sampled_from([None, "same-origin", "none", "cross-site", "same-site"])


class Http:
    """The dashboard of a real `hive-c0re serve` plus a blocking HTTP client for it."""

    def __init__(self, daemon: DaemonProcess) -> None:
        found = re.search(r"dashboard (http://\S+)", daemon.log.read_text())
        if found is None:
            pytest.fail(f"hive-c0re printed no dashboard URL:\n{daemon.log.read_text()}")
        parts = urlsplit(found.group(1))
        assert parts.hostname is not None
        assert parts.port is not None
        self.host, self.port = parts.hostname, parts.port
        self.db = daemon.root / "state" / "broker.sqlite"
        # The operator's key, as `hive-c0re login` gets it (host socket, root only).
        host = LineClient(daemon.host_socket)
        try:
            self.key = host.call("login")["url"].split("#key=", 1)[1]
        finally:
            host.close()

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, str, bytes]:
        """One request as the logged-in operator's page makes it (with the key)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            sent = {"Authorization": f"Bearer {self.key}", **(headers or {})}
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def http_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon for the module: starting one per test is most of the cost."""
    proc = DaemonProcess(tmp_path_factory.mktemp("http"), HYPERHIVE_HARNESS="false")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def dashboard(http_daemon: DaemonProcess) -> Http:
    daemon = http_daemon
    host = LineClient(daemon.host_socket)
    for name in ("ana", "ben"):
        assert host.call("spawn", name=name)["kind"] == "ok"
    ana = LineClient(daemon.socket_of("ana"))
    asked = ana.call("ask_operator", question="ok?", options=["yes", "no"])
    assert asked["kind"] == "question_queued"
    manager = LineClient(daemon.socket_of("manager"))
    assert manager.call("request_spawn", name="cleo")["kind"] == "ok"
    for client in (host, ana, manager):
        client.close()
    return Http(daemon)


def headers_for(target: Http, origin: str, site: str | None, content_type: str) -> dict[str, str]:
    headers = {"Content-Type": content_type}
    if origin == "same":
        headers["Origin"] = f"http://{target.host}:{target.port}"
    elif origin == "cross":
        headers["Origin"] = "http://evil.example:7000"
    elif origin == "null":
        headers["Origin"] = "null"
    if site is not None:
        headers["Sec-Fetch-Site"] = site
    return headers


@FUZZ
@given(
    route=st.sampled_from(ROUTES),
    param=params,
    body=bodies,
    origin=origins,
    site=fetch_sites,
)
def test_form_routes_never_crash_and_refusals_change_nothing(
    dashboard: Http,
    route: str,
    param: str,
    body: tuple[str, bytes],
    origin: str,
    site: str | None,
) -> None:
    if route.startswith(("/destroy", "/kill", "/purge")) and param in PROTECTED:
        param = "ben"
    path = route.format(quote(param, safe=""))
    content_type, payload = body
    before = state_rows(dashboard.db)
    status, kind, answer = dashboard.request(
        "POST", path, payload, headers_for(dashboard, origin, site, content_type)
    )
    assert status != 500, f"POST {path} crashed the handler: {answer[:300]!r}"
    assert status < 500 or status == 503, (status, answer[:300])
    cross = origin in ("cross", "null") or site in ("cross-site", "same-site")
    if cross:
        assert status == 403, f"cross-origin POST {path} was not refused: {status}"
    if status >= 400:
        assert answer.strip(), f"POST {path}: {status} with an empty body"
        if kind.startswith("application/json"):
            error = json.loads(answer)
            assert error["ok"] is False
            assert isinstance(error["error"], str)
            assert error["error"].strip()
            assert "internal error" not in error["error"]
        else:
            # only aiohttp's own router answers without JSON: a path that matched no route
            assert status in (404, 405), (status, answer[:300])
        changed = state_change(before, dashboard.db)
        assert not changed, f"refused POST {path} ({status}: {answer[:200]!r}) changed {changed}"
    else:
        assert 200 <= status < 300, (status, answer[:300])
        settle(dashboard.db)
    alive, _, snapshot = dashboard.request("GET", "/api/state")
    assert alive == 200
    assert "seq" in json.loads(snapshot)


def test_state_changing_routes_accept_only_post(dashboard: Http) -> None:
    before = state_digest(dashboard.db)
    answers = {
        (method, route): dashboard.request(method, route.format("1"))[0]
        for route in ROUTES
        for method in ("GET", "PUT", "DELETE")
    }
    assert {key: status for key, status in answers.items() if status != 405} == {}
    assert state_digest(dashboard.db) == before


@pytest.mark.parametrize(
    ("content_type", "payload"),
    [
        ("application/x-www-form-urlencoded", b"note=\xfa\xfb"),
        ("application/x-www-form-urlencoded", b"\x80"),
        ("multipart/form-data; boundary=xyz", b"not multipart at all"),
    ],
)
def test_unreadable_form_bodies_are_refused_as_bad_requests(
    dashboard: Http, content_type: str, payload: bytes
) -> None:
    before = state_digest(dashboard.db)
    status, _, answer = dashboard.request(
        "POST", "/deny/1", payload, headers_for(dashboard, "same", None, content_type)
    )
    assert status == 400, (status, answer[:300])
    assert state_digest(dashboard.db) == before


def test_a_valid_same_origin_form_does_change_state(dashboard: Http) -> None:
    """The fuzz's 'refused => unchanged' check would pass vacuously if nothing ever worked."""
    before = state_digest(dashboard.db)
    status, _, answer = dashboard.request(
        "POST",
        "/send",
        urlencode({"to": "ana", "body": "hello"}).encode(),
        headers_for(dashboard, "same", "same-origin", "application/x-www-form-urlencoded"),
    )
    reply: dict[str, Any] = json.loads(answer)
    assert (status, reply["ok"]) == (200, True), reply
    assert state_digest(dashboard.db) != before

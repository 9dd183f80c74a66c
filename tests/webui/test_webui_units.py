"""Web UI pieces that need no server: model names, the port rule, the import boundary."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest
from hivetest.imports import hyperhive_units, source_files
from hyperhive import ports
from hyperhive.errors import InvalidRequest
from hyperhive.harness.login import LoginPhase, LoginRunner
from hyperhive.web import trusted_host
from hyperhive.webui import server as webui_server
from hyperhive.webui.control import validate_model


def test_model_names_claude_takes() -> None:
    for good in ("haiku", "sonnet", "opus", "fable", "claude-sonnet-4-5", "claude-opus-4-1[1m]"):
        assert validate_model(good) == good
    for bad in ("", "sonet", "gpt-4", "claude-", "haiku; rm -rf /", "../model"):
        with pytest.raises(InvalidRequest, match="unknown model"):
            validate_model(bad)


def test_the_web_ui_imports_only_the_container_boundary() -> None:
    allowed = {
        "wire",
        "settings",
        "errors",
        "db",
        "harness",
        "webui",
        "http",
        "ports",
        "webstatic",
        "logtail",
        "web",
    }
    for path in source_files("webui"):
        assert hyperhive_units(path) <= allowed, path


# Published FNV-1a 32-bit vectors (Noll's reference set), so each port below is
# 8100 + vector % 900, worked out from the published value, not by the code under test.
PUBLISHED_PORTS = {
    "a": 8620,  # 0xe40c292c = 3826002220
    "b": 8977,  # 0xe70c2de5 = 3876335077
    "c": 8258,  # 0xe60c2c52 = 3859557458
    "foo": 8223,  # 0xa9f37ed7 = 2851307223
    "foobar": 8620,  # 0xbf9cf968 = 3214735720
}


def test_the_web_ui_listens_on_the_port_spec_3_gives_its_name() -> None:
    # The web UI binds where the dashboard links and the firewall opens: the one shared rule.
    assert webui_server.agent_port is ports.agent_port
    assert ports.agent_port("manager") == 8000
    for name, port in PUBLISHED_PORTS.items():
        assert ports.agent_port(name) == port, name
    names = [a + b for a in "abcdefghijklmnopqrstuvwxyz" for b in "0123456789"]
    spread = {ports.agent_port(n) for n in names}
    assert all(8100 <= p < 9000 for p in spread)
    assert len(spread) > len(names) * 3 // 4  # 260 names over 900 ports: few collide


def test_only_this_machines_names_are_trusted_hosts() -> None:
    for host in ("127.0.0.1:8123", "[::1]:8000", "localhost:8100", "ui.localhost", "10.1.2.3"):
        assert trusted_host(host), host
    assert trusted_host(f"{socket.gethostname()}:8100")
    for host in ("evil.example:8123", "127.0.0.1.nip.io:8123", "", "localhost.evil.example"):
        assert not trusted_host(host), host


async def test_a_login_command_starting_with_claude_runs_the_configured_cli(
    claude_bin: Path, tmp_path: Path
) -> None:
    phases: list[str] = []
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DISABLE_AUTOUPDATER": "1"}
    runner = LoginRunner(
        "claude auth --help",
        env,
        lambda kind, payload: phases.append(payload["phase"]),
        lambda: None,
        claude_bin=str(claude_bin),  # not on this PATH: only the substitution finds it
    )
    await runner.start()
    try:
        deadline = time.monotonic() + 30
        while runner.view.phase is LoginPhase.STARTING:
            assert time.monotonic() < deadline, runner.view
            await asyncio.sleep(0.05)
    finally:
        await runner.close()
    assert any("Manage authentication" in line for line in runner.view.output), runner.view
    # It exited 0 without writing credentials: a failure that says what to do.
    assert runner.view.phase is LoginPhase.FAILED
    assert "no credentials appeared" in runner.view.note
    assert phases == ["starting", "failed"]

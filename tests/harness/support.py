"""Helpers for harness tests: a harness wired to a real daemon socket and the API stand-in."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hivetest import Client, DaemonProcess, call
from hyperhive.harness.assembly import Harness
from hyperhive.harness.events import Event
from hyperhive.settings import HarnessSettings
from hyperhive.wire.roles import Role
from standin.api import StandIn, claude_env

MCP_COMMAND = [sys.executable, "-m", "hyperhive.cli.harness"]


def harness_settings(root: Path, name: str, socket: Path, claude_bin: Path) -> HarnessSettings:
    """Settings for one harness with every directory under ``root``."""
    return HarnessSettings(
        agent_name=name,
        socket=socket,
        hive_dir=root / "hive",
        state_dir=root / "state",
        claude_bin=str(claude_bin),
        rate_limit_sleep=0.5,
        retry_base_seconds=0.1,
        retry_max_seconds=0.5,
        result_grace_seconds=1.0,
    )


@dataclass
class Running:
    """A harness running in this test's event loop."""

    harness: Harness
    key: str
    root: Path
    events: asyncio.Queue[Event]

    async def wait_event(
        self, kind: str, match: Callable[[Event], bool] = lambda e: True, within: float = 60
    ) -> Event:
        """The next bus event of ``kind`` that ``match``es, within ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {kind} event within {within} s")
            event = await asyncio.wait_for(self.events.get(), left)
            if event.kind == kind and match(event):
                return event


@asynccontextmanager
async def running_harness(
    root: Path,
    name: str,
    socket: Path,
    claude_bin: Path,
    standin: StandIn,
    settings: HarnessSettings | None = None,
    logged_in: bool = True,
) -> AsyncIterator[Running]:
    """Open a harness (hive files, store, bus), run its turn loop, stop it on exit.

    ``logged_in=False`` runs it with neither an API key nor a credentials file.
    """
    key = f"sk-test-{name}-{uuid.uuid4().hex[:12]}"
    settings = settings or harness_settings(root, name, socket, claude_bin)
    harness = Harness.open(settings, Role.AGENT, MCP_COMMAND)
    harness.loop.env.update(claude_env(standin, root / "home", key))
    if not logged_in:
        del harness.loop.env["ANTHROPIC_API_KEY"]
    harness.loop.poll_seconds = 0.1
    async with harness.bus.subscribe() as events:
        task = asyncio.create_task(harness.loop.run())
        try:
            yield Running(harness, key, root, events)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await harness.close()


async def eventually(check: Callable[[], object], within: float = 30) -> None:
    """Poll ``check`` until it is truthy or the deadline passes."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met before the deadline")
        await asyncio.sleep(0.02)


async def spawn_quiet(host: Path, socket: Path, name: str) -> None:
    """Spawn ``name`` and consume its boot kick, so tests start with an empty inbox."""
    reply = await call(host, "spawn", name=name)
    assert reply["kind"] == "ok", reply
    client = await Client.open(socket)
    try:
        popped = await client.call("recv", wait_seconds=0, max=32)
        if popped["kind"] == "messages":
            await client.call("ack", ids=[m["id"] for m in popped["items"]])
    finally:
        await client.close()


HIVE_AG3NT = Path(sys.executable).with_name("hive-ag3nt")


class HarnessProcess:
    """One real `hive-ag3nt serve` for agent `name`, with the local backend's environment
    contract, in its own process group (killing the group takes claude and its MCP server
    down too, like a container stop)."""

    def __init__(
        self, daemon: DaemonProcess, name: str, standin: StandIn, claude_bin: Path | None = None
    ) -> None:
        if not HIVE_AG3NT.is_file():
            pytest.fail(f"{HIVE_AG3NT} is missing: install the project (pip install -e .)")
        self.name = name
        self.root = daemon.root / "agents-home" / name
        self.key = f"sk-test-{name}-{uuid.uuid4().hex[:12]}"
        self.env = {
            **claude_env(standin, self.root / "claude-home", self.key),
            "HYPERHIVE_AGENT_NAME": name,
            "HYPERHIVE_SOCKET": str(daemon.socket_of(name)),
            "HYPERHIVE_HIVE_DIR": str(self.root / "hive"),
            "HYPERHIVE_STATE_DIR": str(self.root / "state"),
            "HYPERHIVE_CLAUDE_BIN": str(claude_bin)
            if claude_bin
            else os.environ.get("HYPERHIVE_TEST_CLAUDE", "claude"),
        }
        if "PYTHONPATH" in os.environ:  # run the same hyperhive as this test
            self.env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def events_db(self) -> Path:
        return self.root / "state" / "hyperhive-events.sqlite"

    def start(self, claude_bin: Path | None = None) -> None:
        if claude_bin is not None:
            self.env["HYPERHIVE_CLAUDE_BIN"] = str(claude_bin)
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "harness.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [str(HIVE_AG3NT), "serve"],
                env=self.env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        """SIGTERM (what systemd and the local backend send); the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        self.proc.terminate()
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        if not self.events_db.exists():
            return []
        conn = sqlite3.connect(f"file:{self.events_db}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT kind, payload_json FROM events ORDER BY id").fetchall()
        finally:
            conn.close()
        return [(kind, json.loads(payload)) for kind, payload in rows]

    def event_kinds(self) -> list[str]:
        return [kind for kind, _ in self.events()]

    def turn_ends(self) -> list[dict[str, Any]]:
        return [p for kind, p in self.events() if kind == "turn_end"]

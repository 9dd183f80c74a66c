"""Helpers for harness tests: a harness wired to a real daemon socket and the API stand-in."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from hivetest import Client, call
from hyperhive.harness.events import Event
from hyperhive.harness.roles import Role
from hyperhive.harness.serve import Harness
from hyperhive.settings import HarnessSettings
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

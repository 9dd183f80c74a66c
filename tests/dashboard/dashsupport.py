"""Test support for the dashboard: a started hive with its dashboard on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hivetest import call, running_hive
from hyperhive.daemon import Hive
from hyperhive.dashboard import start_dashboard
from hyperhive.http import BoundApp


@dataclass
class Dash:
    """A running hive and its dashboard."""

    hive: Hive
    bound: BoundApp

    @property
    def url(self) -> str:
        return self.bound.url

    @property
    def login_url(self) -> str:
        """What `hive-c0re login` prints: the key in the fragment."""
        return f"{self.url}/login#key={self.hive.credentials.dashboard_key()}"

    @property
    def auth(self) -> dict[str, str]:
        """The header the operator's logged-in browser sends."""
        return {"Authorization": f"Bearer {self.hive.credentials.dashboard_key()}"}

    def socket(self, name: str) -> Path:
        return self.hive.lifecycle.paths(name).socket  # type: ignore[arg-type]

    async def agent(self, name: str, cmd: str, **fields: Any) -> dict[str, Any]:
        """One request on an agent's (or the manager's) own socket."""
        return await call(self.socket(name), cmd, **fields)


@asynccontextmanager
async def running_dashboard(root: Path, **overrides: Any) -> AsyncIterator[Dash]:
    """A started hive plus its dashboard; both stopped on exit."""
    async with running_hive(root, **overrides) as hive:
        dash = Dash(hive, await start_dashboard(hive, port=0))
        try:
            yield dash
        finally:
            await dash.bound.stop()  # a test may have restarted it


async def until(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Poll `check` until it is true, failing after `within` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the deadline")
        await asyncio.sleep(0.02)


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` as the manager would (its own identity); stdout stripped."""
    out = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=manager", "-c", "user.email=m@hive", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout.strip()

"""Helpers for the container tests: a per-agent script router over one stand-in API key.

Agents started by the daemon all get the daemon's ``ANTHROPIC_API_KEY`` (passed through),
so the stand-in sees one key for every agent. The router tells agents apart by the
system prompt the harness renders ("You are <name>, ...") and keeps one script per agent.
A script starts only when the agent's prompt contains its trigger, so boot kicks and
system events get a short generic answer and never eat a scripted step.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from standin.api import (
    JsonObj,
    StandIn,
    Step,
    Text,
    ToolCall,
    last_user_text,
    needs_tool_search,
)

NAME_RE = re.compile(r"You are (\S+), (?:an agent|the manager)")


def require_nspawn() -> None:
    """Skip without systemd-nspawn or root, except under CI where that is a failure."""
    missing = shutil.which("systemd-nspawn") is None or os.geteuid() != 0
    if missing:
        message = "needs systemd-nspawn (Debian systemd-container) and root"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class Script:
    """Steps an agent plays once its prompt contains `trigger`."""

    trigger: str
    steps: deque[Step] = field(default_factory=deque)
    started: bool = False


class Router:
    """Answers every main-loop request of one key from the calling agent's own script."""

    def __init__(self, standin: StandIn, key: str, slots: int = 400) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, list[Script]] = {}
        self.seen: dict[str, list[str]] = {}
        standin.script(key, *([self.step] * slots))

    def add(self, agent: str, trigger: str, *steps: Step) -> None:
        """Give `agent` a script played when a prompt contains `trigger`."""
        with self._lock:
            self._scripts.setdefault(agent, []).append(Script(trigger, deque(steps)))

    def step(self, body: JsonObj) -> Step:
        system = json.dumps(body.get("system", ""))
        match = NAME_RE.search(system)
        agent = match.group(1) if match else "?"
        prompt = last_user_text(body)
        with self._lock:
            self.seen.setdefault(agent, []).append(prompt)
            scripts = self._scripts.get(agent, [])
            active = next((s for s in scripts if s.started and s.steps), None)
            if active is None:
                active = next((s for s in scripts if not s.started and s.trigger in prompt), None)
                if active is not None:
                    active.started = True
            if active is None or not active.steps:
                return Text("(nothing to do)")
            step = active.steps.popleft()
            if isinstance(step, ToolCall) and needs_tool_search(step, body):
                # Load the deferred tool first, per agent (the stand-in would requeue it
                # on the shared key, where another agent could take it).
                step.searched = True
                active.steps.appendleft(step)
                query = {"query": f"select:{step.name}", "max_results": 5}
                return ToolCall("ToolSearch", query, True)
            return step

    def pending(self, agent: str) -> int:
        """Scripted steps of `agent` not yet played."""
        with self._lock:
            return sum(len(s.steps) for s in self._scripts.get(agent, []))


async def until(check: Callable[[], Any], within: float = 60, what: str = "condition") -> Any:
    """Poll `check` until truthy; TimeoutError naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {within} s")
        await asyncio.sleep(0.05)


def harness_online(log: Path, name: str) -> bool:
    """Whether the harness in `log` has booted (it logs its socket once it runs)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return False
    return f"{name}: socket /run/hive/mcp.sock" in text.rsplit(f"starting {name}\n", 1)[-1]


def api_key_operator(
    monkeypatch: pytest.MonkeyPatch, standin: StandIn, claude_bin: Path, label: str
) -> Router:
    """What an API-key operator exports before `hive-c0re serve` (passed to every harness),
    pointed at the stand-in; a fresh key per test keeps parallel tests' scripts apart."""
    key = f"sk-test-{label}-{uuid.uuid4().hex[:12]}"
    router = Router(standin, key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", standin.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    monkeypatch.setenv("DISABLE_AUTOUPDATER", "1")
    monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    # Resolved: a claude reached through a symlinked directory is not visible inside a
    # container (docs/gotchas.md), and its agents would never take a turn.
    monkeypatch.setenv("HYPERHIVE_CLAUDE_BIN", str(claude_bin.resolve()))
    return router

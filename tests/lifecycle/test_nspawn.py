"""The nspawn backend with real systemd-nspawn containers (SPEC §10, §17).

Agents run in volatile containers over the host's /usr with the SPEC §3 layout; the real
claude CLI runs inside against the API stand-in (only the model is scripted).
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hivetest import call, running_hive
from hyperhive.agents.names import AgentName
from hyperhive.daemon import Hive
from hyperhive.lifecycle.nspawn import NspawnBackend
from hyperhive.settings import BackendKind
from lifecycle.support import Router, api_key_operator, harness_online, require_nspawn, until
from standin.api import StandIn, Text, ToolCall


@pytest.fixture
async def nspawn_hive(
    tmp_path: Path, standin: StandIn, claude_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Hive, Router]]:
    require_nspawn()
    router = api_key_operator(monkeypatch, standin, claude_bin, "nspawn")
    monkeypatch.setenv("HYPERHIVE_RATE_LIMIT_SLEEP", "1")
    async with running_hive(
        tmp_path,
        backend=BackendKind.NSPAWN,
        crash_watch_seconds=0.2,
        stop_timeout_seconds=5,
    ) as hive:
        yield hive, router


def manager_events(hive: Hive, event: str) -> list[dict[str, Any]]:
    found = []
    for row in hive.broker.recent("manager", 500):
        if row.sender == "system" and row.recipient == "manager" and row.body.startswith("{"):
            body = json.loads(row.body)
            if body.get("event") == event:
                found.append(body)
    return found


PROBE = (
    "ls -a /run/hive > /state/notes.txt;"
    " for p in /run/hyperhive {run}/host.sock {run}/agents/ns-bob/mcp.sock {state}/broker.sqlite;"
    ' do if test -e "$p"; then echo "visible $p"; else echo "absent $p"; fi; done'
    " >> /state/notes.txt; echo probed"
)


async def test_agents_in_nspawn_talk_through_the_broker_and_see_only_their_own_socket(
    nspawn_hive: tuple[Hive, Router],
) -> None:
    hive, router = nspawn_hive
    run_dir, state_dir = hive.settings.run_dir, hive.settings.state_dir
    router.add(
        "ns-alice",
        "ask ns-bob",
        ToolCall("Bash", {"command": PROBE.format(run=run_dir, state=state_dir)}),
        ToolCall("mcp__hyperhive__send", {"to": "ns-bob", "body": "ns-bob, please say pong"}),
        Text("asked ns-bob"),
    )
    router.add(
        "ns-bob",
        "please say pong",
        ToolCall("mcp__hyperhive__send", {"to": "ns-alice", "body": "pong"}),
        Text("answered ns-alice"),
    )
    host = hive.settings.host_socket
    for name in ("ns-alice", "ns-bob"):
        reply = await call(host, "spawn", name=name)
        assert reply["kind"] == "ok", reply
    sent = await call(host, "send", to="ns-alice", body="please ask ns-bob for a pong")
    assert sent["kind"] == "ok", sent

    def pong_acked() -> bool:
        rows = hive.broker.recent("ns-alice", 100)
        return any(r.sender == "ns-bob" and r.body == "pong" and r.acked for r in rows)

    await until(pong_acked, 150, "bob's pong acked by alice")
    assert router.pending("ns-alice") == 0
    assert router.pending("ns-bob") == 0
    notes = hive.lifecycle.paths(AgentName("ns-alice")).state / "notes.txt"
    text = notes.read_text()
    assert "mcp.sock" in text.splitlines()[:10], text  # its own socket, through the bind
    assert "visible" not in text, text  # nothing of the host's hive is reachable
    assert f"absent {run_dir}/host.sock" in text
    assert f"absent {run_dir}/agents/ns-bob/mcp.sock" in text
    assert f"absent {state_dir}/broker.sqlite" in text
    bob_rows = hive.broker.recent("ns-bob", 100)
    assert [r.body for r in bob_rows if r.sender == "ns-alice"] == ["ns-bob, please say pong"]


async def test_crash_destroy_revive_purge_on_nspawn(nspawn_hive: tuple[Hive, Router]) -> None:
    hive, _ = nspawn_hive
    backend = hive.lifecycle.backend
    assert isinstance(backend, NspawnBackend)
    host = hive.settings.host_socket
    assert (await call(host, "spawn", name="ns-carol"))["kind"] == "ok"
    paths = hive.lifecycle.paths(AgentName("ns-carol"))
    log = paths.harness_log
    await until(lambda: harness_online(log, "ns-carol"), 30, "carol's harness online")
    marker = paths.state / "kept.txt"
    marker.write_text("notes survive a destroy")

    leader = backend.leader(paths)
    assert leader is not None
    os.kill(leader, signal.SIGKILL)  # from outside: the container's PID 1 dies
    # Only carol's: the manager's harness may crash on its own here if port 8000 is taken
    # by another test's manager, which is not what this test is about.
    crashes = await until(
        lambda: [c for c in manager_events(hive, "container_crash") if c["agent"] == "ns-carol"],
        20,
        "container_crash",
    )
    assert len(crashes) == 1
    assert hive.registry.get("ns-carol").state == "failed"

    assert (await call(host, "start", name="ns-carol"))["kind"] == "ok"
    await until(lambda: harness_online(log, "ns-carol"), 30, "carol back after start")

    assert (await call(host, "destroy", name="ns-carol"))["kind"] == "ok"
    assert not await backend.is_running(paths)
    assert not paths.socket.exists()
    assert marker.read_text() == "notes survive a destroy"
    listed = await call(host, "list")
    assert {a["name"]: a["state"] for a in listed["items"]}["ns-carol"] == "destroyed"
    refused = await call(host, "spawn", name="ns-carol")  # spawn of a tombstone = revive
    assert refused["kind"] == "ok", refused
    await until(lambda: harness_online(log, "ns-carol"), 30, "carol revived")
    assert marker.read_text() == "notes survive a destroy"
    spawned = [e["revived"] for e in manager_events(hive, "spawned") if e["agent"] == "ns-carol"]
    assert spawned == [False, True]

    live_purge = await call(host, "destroy", name="ns-carol", purge=True)
    assert live_purge["kind"] == "ok", live_purge
    assert not paths.root.exists()
    assert not paths.applied.exists()
    assert "ns-carol" not in {a["name"] for a in (await call(host, "list"))["items"]}

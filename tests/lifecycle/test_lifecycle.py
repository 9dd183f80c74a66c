"""Lifecycle verbs, startup reconciliation, crash watch and auto_update (SPEC §10)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hivetest import DaemonProcess, call, drain, running_hive
from hyperhive.agents.names import AgentName
from hyperhive.daemon import Hive
from hyperhive.errors import Conflict
from hyperhive.lifecycle import repos
from lifecycle.support import until


def manager_events(hive: Hive, event: str) -> list[dict[str, Any]]:
    found = []
    for row in hive.broker.recent("manager", 500):
        if row.sender == "system" and row.body.startswith("{"):
            body = json.loads(row.body)
            if body.get("event") == event:
                found.append(body)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_restarted_daemon_adopts_running_harnesses_instead_of_starting_more(
    tmp_path: Path,
) -> None:
    daemon = DaemonProcess(tmp_path, HYPERHIVE_HARNESS="true")
    daemon.start()
    pidfile = tmp_path / "state" / "host" / "rz7q" / "harness.pid"
    try:
        assert daemon.cli("spawn", "rz7q").returncode == 0
        pid = int(pidfile.read_text())
        assert alive(pid)
        daemon.kill9()  # the harness outlives its daemon
        assert alive(pid)
        daemon.start()
        assert int(pidfile.read_text()) == pid, "adopted, not started again"
        listed = json.loads(daemon.cli("--json", "list").stdout)
        assert {a["name"]: a["state"] for a in listed["items"]}["rz7q"] == "running"
        assert daemon.cli("kill", "rz7q").returncode == 0
        assert not alive(pid)
        assert not pidfile.exists()
    finally:
        daemon.stop()
    if pidfile.exists():
        pytest.fail("the daemon's shutdown left a harness running")


async def test_a_stopped_agent_stays_stopped_across_a_daemon_restart(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        assert (await call(hive.settings.host_socket, "spawn", name="alice"))["kind"] == "ok"
        assert (await call(hive.settings.host_socket, "kill", name="alice"))["kind"] == "ok"
    async with running_hive(tmp_path) as hive:
        assert hive.registry.get("alice").state == "stopped"
        paths = hive.lifecycle.paths(AgentName("alice"))
        assert not await hive.lifecycle.backend.is_running(paths)
        assert paths.socket.exists(), "a stopped agent keeps its socket and queue"


async def test_purge_is_refused_while_the_agent_is_live(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        await hive.lifecycle.spawn("alice")
        with pytest.raises(Conflict, match="destroy it before purging"):
            await hive.lifecycle.purge("alice")
        assert hive.lifecycle.paths(AgentName("alice")).root.is_dir()


async def test_revive_reuses_state_and_credentials(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        host = hive.settings.host_socket
        await hive.lifecycle.spawn("alice")
        paths = hive.lifecycle.paths(AgentName("alice"))
        (paths.claude / ".credentials.json").write_text("{}")
        (paths.state / "notes.md").write_text("remember me")
        seed = (paths.applied / ".git" / "HEAD").read_text()
        refused = await call(host, "revive", name="alice")
        assert refused["kind"] == "err"
        assert "not destroyed" in refused["message"]
        await hive.lifecycle.destroy("alice")
        assert hive.registry.get("alice").state == "destroyed"
        revived = await call(host, "revive", name="alice")
        assert revived["kind"] == "ok", revived
        assert (paths.state / "notes.md").read_text() == "remember me"
        assert (paths.claude / ".credentials.json").is_file()
        assert (paths.applied / ".git" / "HEAD").read_text() == seed
        assert hive.registry.get("alice").state == "running"
        assert [e["revived"] for e in manager_events(hive, "spawned")] == [False, True]
        assert [e["agent"] for e in manager_events(hive, "destroyed")] == ["alice"]


async def test_crash_watch_reports_login_changes(tmp_path: Path) -> None:
    if os.environ.get("ANTHROPIC_API_KEY"):
        pytest.skip("an API key in the environment counts as logged in")
    async with running_hive(tmp_path, crash_watch_seconds=0.05) as hive:
        await hive.lifecycle.spawn("alice")
        await until(lambda: manager_events(hive, "needs_login"), 10, "needs_login")
        paths = hive.lifecycle.paths(AgentName("alice"))
        (paths.claude / ".credentials.json").write_text("{}")
        await until(lambda: manager_events(hive, "logged_in"), 10, "logged_in")
        assert [e["agent"] for e in manager_events(hive, "needs_login")] == ["alice"]


async def test_a_revived_agent_without_a_login_is_news_again(tmp_path: Path) -> None:
    if os.environ.get("ANTHROPIC_API_KEY"):
        pytest.skip("an API key in the environment counts as logged in")
    async with running_hive(tmp_path, crash_watch_seconds=3600) as hive:
        await hive.lifecycle.spawn("alice")
        await hive.watch.check_once()
        await hive.watch.check_once()
        assert len(manager_events(hive, "needs_login")) == 1
        await hive.lifecycle.destroy("alice")
        await hive.lifecycle.revive("alice")
        await hive.watch.check_once()
        assert [e["agent"] for e in manager_events(hive, "needs_login")] == ["alice", "alice"]


async def test_crash_watch_reports_a_harness_that_died(tmp_path: Path) -> None:
    async with running_hive(tmp_path, crash_watch_seconds=0.05) as hive:
        await hive.lifecycle.spawn("alice")
        await hive.lifecycle.backend.stop(hive.lifecycle.paths(AgentName("alice")))
        crashes = await until(lambda: manager_events(hive, "container_crash"), 10, "crash")
        assert [c["agent"] for c in crashes] == ["alice"]
        assert hive.registry.get("alice").state == "failed"
        # an operator verb is not a crash
        assert (await call(hive.settings.host_socket, "start", name="alice"))["kind"] == "ok"
        assert (await call(hive.settings.host_socket, "kill", name="alice"))["kind"] == "ok"
        await hive.watch.check_once()
        assert len(manager_events(hive, "container_crash")) == 1


async def test_crash_watch_tells_a_stale_build_once_until_a_rebuild(tmp_path: Path) -> None:
    async with running_hive(tmp_path, crash_watch_seconds=3600) as hive:
        await hive.lifecycle.spawn("alice")
        paths = hive.lifecycle.paths(AgentName("alice"))
        sha = repos.deployed_record(paths)["sha"]

        def built_elsewhere() -> None:
            repos.write_deployed_record(paths, "path:/elsewhere", sha)

        built_elsewhere()
        for _ in range(3):
            await hive.watch.check_once()
        assert [e["agent"] for e in manager_events(hive, "needs_update")] == ["alice"]
        await hive.lifecycle.rebuild("alice")
        await hive.watch.check_once()
        assert len(manager_events(hive, "needs_update")) == 1
        built_elsewhere()  # stale again: news again
        await hive.watch.check_once()
        await hive.watch.check_once()
        assert len(manager_events(hive, "needs_update")) == 2


async def test_auto_update_rebuilds_agents_built_from_another_flake(tmp_path: Path) -> None:
    async with running_hive(tmp_path, flake_ref="path:/old") as hive:
        await hive.lifecycle.spawn("alice")
        await hive.lifecycle.spawn("bob")
        await hive.lifecycle.kill("bob")
        paths = hive.lifecycle.paths(AgentName("alice"))
        assert repos.deployed_record(paths)["flake_ref"] == "path:/old"
    async with running_hive(tmp_path, flake_ref="path:/new") as hive:
        await until(lambda: len(manager_events(hive, "rebuilt")) == 2, 20, "two rebuilds")
        assert repos.deployed_record(paths)["flake_ref"] == "path:/new"
        assert not hive.lifecycle.is_stale("alice")
        assert hive.registry.get("alice").state == "running"
        assert hive.registry.get("bob").state == "stopped", "a stopped agent stays stopped"
        kicks = await drain(paths.socket)
        assert any("rebuilt" in m["body"] for m in kicks)


async def test_manager_cannot_stop_itself_but_the_operator_can(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        manager = hive.lifecycle.paths(AgentName("manager")).socket
        for cmd in ("kill", "start", "restart", "update"):
            reply = await call(manager, cmd, name="manager")
            assert reply["kind"] == "err", (cmd, reply)
            assert "cannot" in reply["message"]
        reply = await call(hive.settings.host_socket, "restart", name="manager")
        assert reply["kind"] == "ok", reply


async def test_crash_watch_leaves_an_agent_alone_while_a_verb_holds_it(tmp_path: Path) -> None:
    async with running_hive(tmp_path, crash_watch_seconds=3600) as hive:
        await hive.lifecycle.spawn("alice")
        name = AgentName("alice")
        paths = hive.lifecycle.paths(name)
        # A verb that keeps the state `running` while it stops and starts the container
        # (the start-up's restart of a manager with outdated binds is one).
        async with hive.lifecycle.verb(name, None):
            await hive.lifecycle.backend.stop(paths)
            await hive.watch.check_once()
            assert manager_events(hive, "container_crash") == []
            await hive.lifecycle.backend.start(paths)
        assert hive.registry.get("alice").state == "running"


@pytest.mark.parametrize("verb", ["kill", "start", "restart", "rebuild"])
async def test_a_verb_on_a_destroyed_agent_is_refused(tmp_path: Path, verb: str) -> None:
    async with running_hive(tmp_path) as hive:
        await hive.lifecycle.spawn("alice")
        await hive.lifecycle.destroy("alice")
        with pytest.raises(Conflict, match="revive it first"):
            await getattr(hive.lifecycle, verb)("alice")
        assert hive.registry.get("alice").state == "destroyed"


async def test_a_rebuild_whose_start_fails_leaves_the_agent_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_hive(tmp_path) as hive:
        await hive.lifecycle.spawn("alice")

        async def refuse(paths: object) -> None:
            raise OSError("no start today")

        monkeypatch.setattr(hive.lifecycle.backend, "start", refuse)
        with pytest.raises(OSError, match="no start today"):
            await hive.lifecycle.rebuild("alice")
        assert hive.registry.get("alice").state == "failed"
        with pytest.raises(OSError, match="no start today"):
            await hive.lifecycle.start("alice")
        assert hive.registry.get("alice").state == "failed", "a failed start restores"


async def test_a_login_between_start_up_and_the_first_pass_is_news(tmp_path: Path) -> None:
    if os.environ.get("ANTHROPIC_API_KEY"):
        pytest.skip("an API key in the environment counts as logged in")
    async with running_hive(tmp_path, crash_watch_seconds=3600) as hive:
        await hive.lifecycle.spawn("alice")
    async with running_hive(tmp_path, crash_watch_seconds=3600) as hive:
        paths = hive.lifecycle.paths(AgentName("alice"))
        (paths.claude / ".credentials.json").write_text("{}")
        await hive.watch.check_once()
        assert [e["agent"] for e in manager_events(hive, "logged_in")] == ["alice"]

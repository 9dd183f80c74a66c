"""The daemon's file work in trees an agent or the manager can write (docs/security.md).

Each test plays what a hostile agent (root in its container) or a prompt-injected manager
(which binds the whole agents/ tree) can do to those trees: symlinks planted where the
daemon reads or writes, a directory swapped for a link to a host directory. After each
attack a stand-in host file outside the agent's trees is unchanged, nothing of it leaks,
and the daemon, the operator's CLI socket and the dashboard still answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hivetest import DaemonProcess, call, make_settings, running_hive
from hyperhive.agents.names import AgentName
from hyperhive.agents.paths import AgentPaths
from hyperhive.daemon import Hive
from hyperhive.dashboard import start_dashboard
from hyperhive.http import BoundApp
from hyperhive.lifecycle.backends import BuildFailed, build_from_repo
from hyperhive.settings import BackendKind
from lifecycle.support import api_key_operator, harness_online, require_nspawn, until
from standin.api import StandIn

SECRET = "root:x:0:0:SECRET-HOST-LINE:/root:/bin/bash\n"


class Rig:
    """An in-process hive with its dashboard, and a stand-in host file outside its trees."""

    def __init__(self, hive: Hive, bound: BoundApp, host_file: Path, host_dir: Path) -> None:
        self.hive = hive
        self.bound = bound
        self.host_file = host_file
        self.host_dir = host_dir

    def paths(self, name: str) -> AgentPaths:
        return self.hive.lifecycle.paths(AgentName(name))

    async def host(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """One request on host.sock (what the operator's CLI sends)."""
        return await asyncio.wait_for(call(self.hive.settings.host_socket, cmd, **fields), 10)

    async def get(self, path: str) -> tuple[int, Any]:
        """A GET as the logged-in operator's dashboard page."""
        auth = {"Authorization": f"Bearer {self.hive.credentials.dashboard_key()}"}
        async with aiohttp.ClientSession(headers=auth) as s, s.get(self.bound.url + path) as r:
            return r.status, await r.json()

    async def still_answers(self) -> None:
        """The daemon, the CLI's socket and the dashboard answer."""
        listed = await self.host("list")
        assert listed["kind"] == "agents", listed
        status, _ = await self.get("/api/state")
        assert status == 200

    def host_untouched(self) -> None:
        assert self.host_file.read_text() == SECRET
        assert stat.S_IMODE(self.host_file.stat().st_mode) == 0o4755
        assert stat.S_IMODE(self.host_dir.stat().st_mode) == 0o755
        assert sorted(p.name for p in self.host_dir.iterdir()) == ["keep"]


def stand_ins(tmp_path: Path) -> tuple[Path, Path]:
    """A host file (setuid, like a binary an attacker would like to change) and a host dir."""
    outside = tmp_path / "host-fs"
    outside.mkdir()
    host_file = outside / "passwd"
    host_file.write_text(SECRET)
    host_file.chmod(0o4755)
    host_dir = outside / "etc-dir"
    host_dir.mkdir()
    host_dir.chmod(0o755)
    (host_dir / "keep").write_text("host data\n")
    return host_file, host_dir


async def rig_for(tmp_path: Path, **overrides: Any) -> AsyncIterator[Rig]:
    host_file, host_dir = stand_ins(tmp_path)
    async with running_hive(tmp_path / "hive", **overrides) as hive:
        bound = await start_dashboard(hive, port=0)
        try:
            yield Rig(hive, bound, host_file, host_dir)
        finally:
            await bound.stop()


@pytest.fixture
async def local_rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """The local backend with real harness processes."""
    async for rig in rig_for(tmp_path, harness=True, stop_timeout_seconds=5):
        yield rig


@pytest.fixture
async def nspawn_rig(
    tmp_path: Path, standin: StandIn, claude_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Rig]:
    require_nspawn()
    api_key_operator(monkeypatch, standin, claude_bin, "hostile")
    async for rig in rig_for(
        tmp_path, backend=BackendKind.NSPAWN, crash_watch_seconds=0.2, stop_timeout_seconds=5
    ):
        yield rig


def plant_link(link: Path, target: Path) -> None:
    """What the attacker does: replace `link` (file or tree) with a symlink to `target`."""
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)
    else:
        link.unlink(missing_ok=True)
    link.symlink_to(target)


async def spawned(rig: Rig, name: str) -> AgentPaths:
    await rig.hive.lifecycle.spawn(name)
    return rig.paths(name)


# -- pidfiles and the harness log ------------------------------------------------------------


def log_path(paths: AgentPaths) -> Path:
    """The harness log (where versions before this fix kept it, so the attack runs there)."""
    return getattr(paths, "harness_log", paths.root / "harness.log")


@pytest.mark.parametrize("leaf", ["harness.pid", "harness.log"])
async def test_local_links_in_the_agent_root_are_never_written_through(
    local_rig: Rig, leaf: str
) -> None:
    paths = await spawned(local_rig, "hf-alice")
    assert (await local_rig.host("kill", name="hf-alice"))["kind"] != "err"
    plant_link(paths.root / leaf, local_rig.host_file)
    assert (await local_rig.host("start", name="hf-alice"))["kind"] != "err"
    assert (await local_rig.host("restart", name="hf-alice"))["kind"] != "err"
    local_rig.host_untouched()
    await local_rig.still_answers()


async def test_local_a_symlinked_harness_log_is_not_served_by_the_log_viewer(
    local_rig: Rig,
) -> None:
    paths = await spawned(local_rig, "hf-alice")
    assert (await local_rig.host("kill", name="hf-alice"))["kind"] != "err"
    plant_link(paths.root / "harness.log", local_rig.host_file)
    assert (await local_rig.host("start", name="hf-alice"))["kind"] != "err"
    status, body = await local_rig.get("/api/journal/hf-alice?lines=2000")
    assert status == 200
    assert not any("SECRET-HOST-LINE" in line for line in body["lines"])
    local_rig.host_untouched()
    await local_rig.still_answers()


async def test_local_the_log_viewer_strips_control_characters_and_caps_lines(
    local_rig: Rig,
) -> None:
    paths = await spawned(local_rig, "hf-alice")
    with log_path(paths).open("a") as log:  # what a harness can print
        log.write("A" * 100_000 + "\n" + "\x1b]0;owned\x07\x1b[2Jhello\u202eevil\n")
    status, body = await local_rig.get("/api/journal/hf-alice?lines=2000")
    assert status == 200
    assert not any(ch in line for line in body["lines"] for ch in "\x1b\x07\u202e")
    assert all(len(line) <= 2000 for line in body["lines"])
    assert any(line.endswith("hello\ufffdevil") for line in body["lines"])
    await local_rig.still_answers()


def test_local_a_planted_legacy_pidfile_never_makes_the_daemon_adopt_or_kill_another_agent(
    tmp_path: Path,
) -> None:
    """The manager writes bob's harness pid into alice's harness.pid (the old place)."""
    daemon = DaemonProcess(tmp_path, HYPERHIVE_HARNESS="true")
    state = tmp_path / "state"

    def pid_of(name: str) -> int:
        for place in (state / "host" / name, state / "agents" / name):
            if (place / "harness.pid").is_file():
                return int((place / "harness.pid").read_text())
        raise AssertionError(f"no pidfile for {name}")

    started: list[int] = []
    try:
        daemon.start()
        for name in ("hf-alice", "hf-bob"):
            assert daemon.cli("spawn", name).returncode == 0
        alice, bob = pid_of("hf-alice"), pid_of("hf-bob")
        started += [alice, bob]
        daemon.kill9()  # harnesses outlive their daemon
        (state / "agents" / "hf-alice" / "harness.pid").write_text(f"{bob}\n")
        daemon.start()
        assert daemon.cli("kill", "hf-alice").returncode == 0
        assert alive(bob), "killing alice signalled bob's harness"
        assert not alive(alice)
        listed = daemon.cli("list")
        assert listed.returncode == 0
    finally:
        daemon.stop()
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


# -- swapped directories ------------------------------------------------------------------------


async def test_local_a_symlinked_claude_dir_is_refused_and_its_target_keeps_its_mode(
    local_rig: Rig,
) -> None:
    paths = await spawned(local_rig, "hf-alice")
    assert (await local_rig.host("kill", name="hf-alice"))["kind"] != "err"
    plant_link(paths.claude, local_rig.host_dir)
    reply = await local_rig.host("start", name="hf-alice")
    assert reply["kind"] == "err"
    assert "symlink" in reply["message"]
    assert "claude" in reply["message"]
    assert not await local_rig.hive.lifecycle.backend.is_running(paths)
    local_rig.host_untouched()
    await local_rig.still_answers()


async def test_local_a_swapped_state_dir_is_refused_and_never_used(local_rig: Rig) -> None:
    paths = await spawned(local_rig, "hf-alice")
    assert (await local_rig.host("kill", name="hf-alice"))["kind"] != "err"
    plant_link(paths.state, local_rig.host_dir)
    reply = await local_rig.host("restart", name="hf-alice")
    assert reply["kind"] == "err"
    assert "symlink" in reply["message"]
    assert "state" in reply["message"]
    assert not await local_rig.hive.lifecycle.backend.is_running(paths)
    local_rig.host_untouched()
    await local_rig.still_answers()


async def test_local_a_symlinked_agent_root_is_refused(local_rig: Rig) -> None:
    paths = await spawned(local_rig, "hf-alice")
    assert (await local_rig.host("kill", name="hf-alice"))["kind"] != "err"
    moved = paths.root.with_name("alice-moved")
    paths.root.rename(moved)
    paths.root.symlink_to(local_rig.host_dir)
    reply = await local_rig.host("start", name="hf-alice")
    assert reply["kind"] == "err"
    local_rig.host_untouched()
    await local_rig.still_answers()


async def test_a_symlinked_credentials_file_is_not_a_login(
    local_rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = await spawned(local_rig, "hf-alice")
    (paths.claude / ".credentials.json").symlink_to(local_rig.host_file)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)  # only the file decides here
    assert not local_rig.hive.lifecycle.logged_in("hf-alice")
    local_rig.host_untouched()


async def test_a_committed_identity_file_link_is_not_written_through_on_rebuild(
    local_rig: Rig,
) -> None:
    paths = await spawned(local_rig, "hf-alice")
    # What a merged manager commit leaves in the applied checkout (git stores links).
    plant_link(paths.applied / "hyperhive-identity.json", local_rig.host_file)
    await local_rig.host("rebuild", name="hf-alice")
    local_rig.host_untouched()
    await local_rig.still_answers()


# -- what reaches an error message ---------------------------------------------------------------


async def test_a_symlinked_agent_nix_is_refused_without_reading_its_target(
    local_rig: Rig,
) -> None:
    paths = await spawned(local_rig, "hf-alice")
    plant_link(paths.applied / "agent.nix", local_rig.host_file)
    with pytest.raises(BuildFailed) as failed:
        await build_from_repo(paths)
    text = f"{failed.value} {failed.value.tail}"
    assert "SECRET-HOST-LINE" not in text
    assert "root:x" not in text
    assert "is a symlink" in text
    local_rig.host_untouched()


@pytest.mark.skipif(shutil.which("nix-instantiate") is None, reason="needs nix-instantiate")
async def test_a_parse_error_reaches_the_manager_bounded_and_without_controls(
    local_rig: Rig,
) -> None:
    paths = await spawned(local_rig, "hf-alice")
    (paths.applied / "agent.nix").write_text("{ x = \x1b[31m" + "y" * 50_000 + " ; ;\n")
    with pytest.raises(BuildFailed) as failed:
        await build_from_repo(paths)
    tail = failed.value.tail
    assert "does not parse" in str(failed.value)
    assert "\x1b" not in tail
    assert len(tail) <= 4000


# -- the nspawn backend ------------------------------------------------------------------------


async def running_in_nspawn(rig: Rig, name: str) -> AgentPaths:
    paths = await spawned(rig, name)
    await until(lambda: harness_online(log_path(paths), name), 90, f"{name} online")
    return paths


async def test_nspawn_links_for_pidfile_and_log_are_never_followed(nspawn_rig: Rig) -> None:
    paths = await running_in_nspawn(nspawn_rig, "hf-nsa")
    assert (await nspawn_rig.host("kill", name="hf-nsa"))["kind"] != "err"
    plant_link(paths.root / "nspawn.pid", nspawn_rig.host_file)
    plant_link(paths.root / "harness.log", nspawn_rig.host_file)
    assert (await nspawn_rig.host("start", name="hf-nsa"))["kind"] != "err"
    await until(lambda: harness_online(log_path(paths), "hf-nsa"), 90, "online again")
    status, body = await nspawn_rig.get("/api/journal/hf-nsa?lines=2000")
    assert status == 200
    assert not any("SECRET-HOST-LINE" in line for line in body["lines"])
    assert (await nspawn_rig.host("restart", name="hf-nsa"))["kind"] != "err"
    nspawn_rig.host_untouched()
    await nspawn_rig.still_answers()


async def test_nspawn_a_swapped_state_dir_is_refused_and_not_mounted(nspawn_rig: Rig) -> None:
    paths = await running_in_nspawn(nspawn_rig, "hf-nsb")
    assert (await nspawn_rig.host("kill", name="hf-nsb"))["kind"] != "err"
    plant_link(paths.state, nspawn_rig.host_dir)
    reply = await nspawn_rig.host("start", name="hf-nsb")
    assert reply["kind"] == "err"
    assert "symlink" in reply["message"]
    assert "state" in reply["message"]
    assert not await nspawn_rig.hive.lifecycle.backend.is_running(paths)
    plant_link(paths.claude, nspawn_rig.host_dir)
    reply = await nspawn_rig.host("start", name="hf-nsb")
    assert reply["kind"] == "err"
    nspawn_rig.host_untouched()
    await nspawn_rig.still_answers()


def test_bind_sources_outside_the_hive_are_not_checked_but_inside_ones_are(
    tmp_path: Path,
) -> None:
    from hyperhive.lifecycle.backends import verify_binds
    from hyperhive.lifecycle.conf import Bind
    from hyperhive.safefs import UnsafePath

    settings = make_settings(tmp_path)
    paths = AgentPaths.of(settings, AgentName("hf-alice"))
    settings.state_dir.mkdir()
    settings.run_dir.mkdir()
    paths.create()
    verify_binds(paths, [Bind(str(paths.state), "/state"), Bind("/usr", "/usr", True)])
    other = tmp_path / "elsewhere"
    other.mkdir()
    os.chown(other, 4242, 4242)
    shutil.rmtree(paths.state)
    other.rename(paths.state)
    with pytest.raises(UnsafePath, match="owned by uid 4242"):
        verify_binds(paths, [Bind(str(paths.state), "/state")])

"""The nixos backend against a recording stand-in nixos-container (SPEC §10, §17).

The argv sequences are the real CLI's verbs; the conf rewriting runs on real files in
the format nixos-container create and the NixOS module write.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hivetest import call, make_settings
from hyperhive.agents.names import AgentName
from hyperhive.daemon import Hive
from hyperhive.lifecycle import conf
from hyperhive.lifecycle.conf import Bind
from hyperhive.lifecycle.nixos import NixosBackend
from hyperhive.settings import BackendKind

STANDIN = Path(__file__).with_name("nixos_container_standin.py")
FLAKE_REF = "path:/nix/store/00000000000000000000000000000000-source"


@dataclass
class Rig:
    hive: Hive
    root: Path
    log: Path

    def calls(self, tool: str | None = None) -> list[list[str]]:
        if not self.log.exists():
            return []
        rows = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [[r["tool"], *r["argv"]] for r in rows if tool is None or r["tool"] == tool]

    def cwds(self) -> list[str]:
        return [json.loads(line)["cwd"] for line in self.log.read_text().splitlines()]

    def reset(self) -> None:
        self.log.write_text("")


@pytest.fixture
async def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("nixos-container", "systemctl", "journalctl"):
        wrapper = bin_dir / tool
        wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {STANDIN} {tool} "$@"\n')
        wrapper.chmod(0o755)
    root = tmp_path / "standin"
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("STANDIN_ROOT", str(root))
    monkeypatch.setenv("STANDIN_LOG", str(log))
    # hm1nd is declarative: its conf exists (owned by NixOS) and it runs.
    (root / "etc" / "nixos-containers").mkdir(parents=True)
    (root / "etc" / "nixos-containers" / "hm1nd.conf").write_text("SYSTEM_PATH=/nix/store/x\n")
    (root / "running").mkdir()
    (root / "running" / "hm1nd").touch()
    settings = make_settings(
        tmp_path,
        backend=BackendKind.NIXOS,
        flake_ref=FLAKE_REF,
        agent_memory_max="1500M",
        crash_watch_seconds=3600,
    )
    backend = NixosBackend(
        settings,
        conf_dir=root / "etc" / "nixos-containers",
        profile_dir=root / "profiles",
        dropin_dir=tmp_path / "run-systemd",
    )
    hive = Hive(settings, backend)
    await hive.start()
    try:
        yield Rig(hive, root, log)
    finally:
        await hive.stop()


async def test_spawn_rebuild_destroy_argv_sequences(rig: Rig) -> None:
    hive = rig.hive
    assert rig.calls() == [["nixos-container", "status", "hm1nd"]]
    rig.reset()
    host = hive.settings.host_socket
    applied = hive.settings.state_dir / "applied" / "alice"
    flake = ["--flake", f"{applied}#h-alice", "--override-input", "hyperhive", FLAKE_REF]
    flake.append("--no-write-lock-file")

    assert (await call(host, "spawn", name="alice"))["kind"] == "ok"
    assert rig.calls() == [
        ["nixos-container", "create", "h-alice", *flake],
        ["systemctl", "daemon-reload"],
        ["nixos-container", "start", "h-alice"],
    ]
    # nixos-container's flake build writes `.tmp` into its working directory.
    assert rig.cwds()[0] == str(hive.settings.state_dir / "build" / "h-alice")
    dropin = hive.lifecycle.backend.dropin_path(hive.lifecycle.paths(AgentName("alice")))  # type: ignore[attr-defined]
    assert "MemoryMax=1500M" in dropin.read_text()
    assert dropin.parent.name == "container@h-alice.service.d"

    rig.reset()
    assert (await call(host, "rebuild", name="alice"))["kind"] == "ok"
    assert rig.calls() == [
        ["nixos-container", "update", "h-alice", *flake],
        ["nixos-container", "status", "h-alice"],
        ["nixos-container", "stop", "h-alice"],
        ["nixos-container", "start", "h-alice"],
    ]

    rig.reset()
    lines = await hive.lifecycle.backend.journal(hive.lifecycle.paths(AgentName("alice")), 3)
    assert rig.calls() == [["journalctl", "-M", "h-alice", "-n", "3", "--no-pager"]]
    assert len(lines) == 3

    rig.reset()
    assert (await call(host, "destroy", name="alice"))["kind"] == "ok"
    assert rig.calls() == [
        ["nixos-container", "destroy", "h-alice"],
        ["systemctl", "daemon-reload"],
    ]
    assert not (rig.root / "etc" / "nixos-containers" / "h-alice.conf").exists()
    assert not dropin.exists()
    assert (hive.settings.state_dir / "agents" / "alice" / "state").is_dir()


async def test_conf_after_create_is_rewritten_for_the_host_network_and_binds(rig: Rig) -> None:
    hive = rig.hive
    assert (await call(hive.settings.host_socket, "spawn", name="alice"))["kind"] == "ok"
    state, run = hive.settings.state_dir, hive.settings.run_dir
    text = (rig.root / "etc" / "nixos-containers" / "h-alice.conf").read_text()
    assert text.splitlines() == [
        "PRIVATE_NETWORK=0",
        "HOST_ADDRESS=",
        "LOCAL_ADDRESS=",
        "HOST_BRIDGE=",
        "HOST_PORT=",
        "AUTO_START=0",
        f"FLAKE={state}/applied/alice",
        # a user namespace: container root is not host root, nor trusted by nix-daemon
        "PRIVATE_USERS=pick",
        "COPY_RESOLV_CONF=1",
        f'EXTRA_NSPAWN_FLAGS="--bind={run}/agents/alice:/run/hive:idmap'
        f" --bind={state}/agents/alice/claude:/root/.claude:idmap"
        f' --bind={state}/agents/alice/state:/state:idmap"',
    ]


async def test_a_restart_puts_a_conf_without_the_user_namespace_back_in_one(rig: Rig) -> None:
    hive = rig.hive
    host = hive.settings.host_socket
    assert (await call(host, "spawn", name="alice"))["kind"] == "ok"
    path = rig.root / "etc" / "nixos-containers" / "h-alice.conf"
    # a conf from before the upgrade (or edited by hand): no user namespace, plain binds
    old = path.read_text().replace("PRIVATE_USERS=pick\n", "PRIVATE_USERS=no\n")
    path.write_text(old.replace(":idmap", ""))
    rig.reset()
    assert (await call(host, "restart", name="alice"))["kind"] == "ok", rig.calls()
    assert ["nixos-container", "start", "h-alice"] in rig.calls()
    values = conf.parse(path.read_text())
    assert values["PRIVATE_USERS"] == "pick"
    assert all(flag.endswith(":idmap") for flag in values["EXTRA_NSPAWN_FLAGS"].split())


async def test_allow_list_comes_from_the_built_system(rig: Rig) -> None:
    hive = rig.hive
    host = hive.settings.host_socket
    assert (await call(host, "spawn", name="alice"))["kind"] == "ok"
    assert hive.registry.get("alice").allowed_recipients == []
    paths = hive.lifecycle.paths(AgentName("alice"))
    agent_nix = paths.applied / "agent.nix"
    # Edited in the applied tree by hand, never built: not trusted until a build says so.
    agent_nix.write_text(agent_nix.read_text().replace("[ ]", '[ "bob" ]'))
    assert hive.registry.get("alice").allowed_recipients == []
    assert (await call(host, "rebuild", name="alice"))["kind"] == "ok"
    assert hive.registry.get("alice").allowed_recipients == ["bob"]


async def test_a_failed_build_keeps_the_container_and_reports_the_tail(rig: Rig) -> None:
    if shutil.which("nix-instantiate") is None:
        pytest.fail("nix-instantiate (Debian nix-bin) is needed by the stand-in's build")
    hive = rig.hive
    host = hive.settings.host_socket
    assert (await call(host, "spawn", name="alice"))["kind"] == "ok"
    paths = hive.lifecycle.paths(AgentName("alice"))
    (paths.applied / "agent.nix").write_text("{ broken")
    rig.reset()
    reply = await call(host, "rebuild", name="alice")
    assert reply["kind"] == "err"
    assert "building h-alice failed" in reply["message"]
    assert [c[1] for c in rig.calls("nixos-container")] == ["update"]  # no stop, no start
    assert hive.registry.get("alice").state == "running"


REAL_CREATE_CONF = """PRIVATE_NETWORK=1
HOST_ADDRESS=10.233.1.1
LOCAL_ADDRESS=10.233.1.2
HOST_BRIDGE=
HOST_PORT=
AUTO_START=0
FLAKE=/var/lib/hyperhive/applied/alice
"""

# The shape the NixOS module writes for a declarative container (environment.etc).
REAL_MODULE_CONF = """SYSTEM_PATH=/nix/store/wz2h4q-nixos-system-h-alice-25.11
COPY_RESOLV_CONF=0
PRIVATE_NETWORK=1
HOST_ADDRESS=10.231.136.1
HOST_ADDRESS6=fc00::1
LOCAL_ADDRESS=10.231.136.2
LOCAL_ADDRESS6=fc00::2
LOCAL_MAC_ADDRESS=de:ad:be:ef:00:01
PRIVATE_USERS=no
INTERFACES=""
MACVLANS=""
EXTRA_NSPAWN_FLAGS=" --bind-ro=/old:/old --capability=CAP_NET_ADMIN"
"""

BINDS = [Bind("/run/hyperhive/agents/alice", "/run/hive"), Bind("/srv/x", "/x", read_only=True)]
FLAGS = (
    'EXTRA_NSPAWN_FLAGS="--bind=/run/hyperhive/agents/alice:/run/hive:idmap'
    ' --bind-ro=/srv/x:/x:idmap"'
)


def test_rewrite_of_a_created_conf() -> None:
    assert conf.rewrite(REAL_CREATE_CONF, BINDS) == (
        "PRIVATE_NETWORK=0\nHOST_ADDRESS=\nLOCAL_ADDRESS=\nHOST_BRIDGE=\nHOST_PORT=\n"
        "AUTO_START=0\nFLAKE=/var/lib/hyperhive/applied/alice\nPRIVATE_USERS=pick\n"
        f"COPY_RESOLV_CONF=1\n{FLAGS}\n"
    )


def test_rewrite_of_a_module_conf_clears_every_address_and_keeps_the_rest() -> None:
    out = conf.rewrite(REAL_MODULE_CONF, BINDS)
    assert out.splitlines() == [
        "SYSTEM_PATH=/nix/store/wz2h4q-nixos-system-h-alice-25.11",
        "COPY_RESOLV_CONF=1",
        "PRIVATE_NETWORK=0",
        "HOST_ADDRESS=",
        "HOST_ADDRESS6=",
        "LOCAL_ADDRESS=",
        "LOCAL_ADDRESS6=",
        "LOCAL_MAC_ADDRESS=",
        "PRIVATE_USERS=pick",  # was no: the container's root would be host root
        'INTERFACES=""',
        'MACVLANS=""',
        FLAGS,
    ]
    assert conf.rewrite(out, BINDS) == out  # idempotent


def test_rewrite_adds_missing_lines() -> None:
    assert conf.rewrite("AUTO_START=1\n", BINDS) == (
        f"AUTO_START=1\nPRIVATE_NETWORK=0\nPRIVATE_USERS=pick\nCOPY_RESOLV_CONF=1\n{FLAGS}\n"
    )


@pytest.mark.parametrize("text", [REAL_CREATE_CONF, REAL_MODULE_CONF, "COPY_RESOLV_CONF=0\n"])
def test_rewrite_makes_the_start_script_copy_the_hosts_resolv_conf(text: str) -> None:
    # The agent shares the host's network namespace but has no resolver config of its own:
    # without COPY_RESOLV_CONF=1 current start scripts leave its /etc/resolv.conf empty
    # and the harness cannot resolve the API host.
    values = conf.parse(conf.rewrite(text, BINDS))
    assert values["COPY_RESOLV_CONF"] == "1"
    assert conf.rewrite(conf.rewrite(text, BINDS), BINDS).count("COPY_RESOLV_CONF") == 1


@pytest.mark.parametrize("path", ["/a b", "/a:b", "relative", '/a"b', "/a$b"])
def test_paths_that_would_break_the_unquoted_expansion_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="cannot go into EXTRA_NSPAWN_FLAGS"):
        Bind(path, "/x").flag()


def test_parse_reads_back_the_flags() -> None:
    values: dict[str, Any] = conf.parse(conf.rewrite(REAL_MODULE_CONF, BINDS))
    assert values["EXTRA_NSPAWN_FLAGS"].split() == [b.flag(idmap=True) for b in BINDS]
    assert values["PRIVATE_NETWORK"] == "0"
    assert values["PRIVATE_USERS"] == "pick"


async def test_a_swapped_state_dir_is_refused_before_any_conf_write_or_start(
    rig: Rig, tmp_path: Path
) -> None:
    """docs/security.md: a bind source must be a real directory the daemon made."""
    host = rig.hive.settings.host_socket
    assert (await call(host, "spawn", name="alice"))["kind"] == "ok"
    assert (await call(host, "kill", name="alice"))["kind"] == "ok"
    paths = rig.hive.lifecycle.paths(AgentName("alice"))
    outside = tmp_path / "host-dir"
    outside.mkdir()
    shutil.rmtree(paths.state)
    paths.state.symlink_to(outside)  # what the manager can do through /agents
    conf = rig.root / "etc" / "nixos-containers" / "h-alice.conf"
    before = conf.read_text()
    rig.reset()
    for verb in ("start", "rebuild"):
        reply = await call(host, verb, name="alice")
        assert reply["kind"] == "err", reply
        assert "symlink" in reply["message"]
    assert not [c for c in rig.calls("nixos-container") if c[1] in ("start", "update")]
    assert conf.read_text() == before
    assert list(outside.iterdir()) == []
    assert (await call(host, "list"))["kind"] == "agents"


@pytest.mark.parametrize("value", ["no", "identity", "0", "", '"no"', "pick "])
def test_a_conf_that_turns_the_user_namespace_off_is_rewritten_to_pick(value: str) -> None:
    out = conf.rewrite(f"PRIVATE_USERS={value}\nexport PRIVATE_USERS=no\n", BINDS)
    assert [line for line in out.splitlines() if "PRIVATE_USERS" in line] == ["PRIVATE_USERS=pick"]
    assert conf.parse(out)["PRIVATE_USERS"] == "pick"

"""Bad names are refused on every entry point before anything touches the disk (SPEC §16)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hivetest import DaemonProcess, call, running_hive
from hyperhive.errors import InvalidName

BAD = ["..", "a/b", "abcdefghij", "Alice", ""]

HOST_VERBS = [
    ("spawn", {}),
    ("revive", {}),
    ("request_spawn", {}),
    ("kill", {}),
    ("start", {}),
    ("restart", {}),
    ("rebuild", {}),
    ("update", {}),
    ("destroy", {"purge": True}),
]
MANAGER_VERBS = ["request_spawn", "kill", "start", "restart", "update"]


def tree(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if "harness" not in p.name)


@pytest.mark.parametrize("name", BAD)
async def test_sockets_and_services_refuse_bad_names(tmp_path: Path, name: str) -> None:
    async with running_hive(tmp_path) as hive:
        host = hive.settings.host_socket
        manager = hive.lifecycle.paths("manager").socket  # type: ignore[arg-type]
        before = tree(tmp_path)
        for cmd, extra in HOST_VERBS:
            reply = await call(host, cmd, name=name, **extra)
            assert reply["kind"] == "err", (cmd, reply)
            assert "invalid agent name" in reply["message"], (cmd, reply)
        for cmd in MANAGER_VERBS:
            reply = await call(manager, cmd, name=name)
            assert reply["kind"] == "err", (cmd, reply)
            assert "invalid agent name" in reply["message"], (cmd, reply)
        for sock in (host, manager):
            reply = await call(sock, "request_apply_commit", agent=name, commit_ref="abcdef1")
            assert reply["kind"] == "err"
            assert "invalid agent name" in reply["message"]
        # The dashboard calls the services directly.
        life = hive.lifecycle
        for verb in (life.spawn, life.revive, life.kill, life.start, life.restart, life.rebuild):
            with pytest.raises(InvalidName):
                await verb(name)
        for verb in (life.destroy, life.purge):
            with pytest.raises(InvalidName):
                await verb(name)
        with pytest.raises(InvalidName):
            await hive.approvals.request_spawn(name, "")
        with pytest.raises(InvalidName):
            await hive.approvals.request_apply_commit(name, "abcdef1", "")
        assert tree(tmp_path) == before
        assert [a.name for a in hive.registry.all()] == ["manager"]
        assert hive.approvals.list_pending() == []


def test_cli_refuses_bad_names(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path)
    daemon.start()
    try:
        before = tree(tmp_path / "state")
        verbs = [
            lambda n: ["spawn", n],
            lambda n: ["revive", n],
            lambda n: ["request-spawn", n],
            lambda n: ["kill", n],
            lambda n: ["start", n],
            lambda n: ["restart", n],
            lambda n: ["rebuild", n],
            lambda n: ["update", n],
            lambda n: ["destroy", "--purge", "--", n],
            lambda n: ["request-apply-commit", "--", n, "abcdef1"],
        ]
        # Every verb, each with one of the bad names in turn (every name twice): the
        # sockets test above covers every name with every verb; a CLI process costs ~1 s.
        argvs = [verb(BAD[i % len(BAD)]) for i, verb in enumerate(verbs)]
        # One CLI process per verb and name; run side by side to keep the test short.
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda argv: daemon.cli(*argv), argvs))
        for argv, result in zip(argvs, results, strict=True):
            assert result.returncode == 1, (argv, result.stdout, result.stderr)
            assert "invalid agent name" in result.stderr, (argv, result.stderr)
        assert tree(tmp_path / "state") == before
    finally:
        daemon.stop()

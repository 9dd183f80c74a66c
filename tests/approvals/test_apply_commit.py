"""The apply_commit flow with real git repos (SPEC §8): tags, fast-forward, rollback, deny."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hivetest import call, drain, running_hive
from hyperhive.approvals import store as approval_store
from hyperhive.approvals.store import ApprovalStatus
from hyperhive.daemon import Hive
from hyperhive.db.connection import migrate
from hyperhive.db.schema import BROKER_MIGRATIONS


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=30
    )
    return result.stdout.strip()


def tag_exists(repo: Path, tag: str) -> bool:
    return (
        subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "-q", "--verify", f"refs/tags/{tag}"],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )


def manager_commit(config: Path, agent_nix: str, message: str = "change") -> str:
    """What the manager does in /agents/<name>/config: edit agent.nix and commit."""
    (config / "agent.nix").write_text(agent_nix)
    git(config, "add", "agent.nix")
    git(config, "-c", "user.name=manager", "-c", "user.email=m@hm1nd", "commit", "-qm", message)
    return git(config, "rev-parse", "HEAD")


AGENT_NIX = """{ pkgs, ... }:
{
  hyperhive.model = "sonnet";
  hyperhive.allowedRecipients = [ "bob" ];
  system.stateVersion = "25.11";
}
"""


async def until(check: Callable[[], Any], within: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {within} s")
        await asyncio.sleep(0.02)


def events(hive: Hive, event: str) -> list[dict[str, Any]]:
    rows = hive.broker.recent("manager", 500)
    found = []
    for row in rows:
        if row.sender != "system" or row.recipient != "manager":
            continue
        try:
            body = json.loads(row.body)
        except ValueError:
            continue
        if body.get("event") == event:
            found.append(body)
    return found


@pytest.fixture
async def hive(tmp_path: Path) -> AsyncIterator[Hive]:
    async with running_hive(tmp_path, harness=False) as hive:
        reply = await call(hive.settings.host_socket, "spawn", name="alice")
        assert reply["kind"] == "ok", reply
        yield hive


def manager_sock(hive: Hive) -> Path:
    return hive.lifecycle.paths("manager").socket  # type: ignore[arg-type]


async def request(hive: Hive, sha: str, agent: str = "alice") -> dict[str, Any]:
    return await call(
        manager_sock(hive), "request_apply_commit", agent=agent, commit_ref=sha, description="d"
    )


async def test_approve_tags_fast_forwards_rebuilds_and_reports(hive: Hive) -> None:
    paths = hive.lifecycle.paths("alice")  # type: ignore[arg-type]
    before = git(paths.applied, "rev-parse", "main")
    assert hive.registry.get("alice").allowed_recipients == []
    sha = manager_commit(paths.config, AGENT_NIX)
    git(paths.config, "commit", "--allow-empty", "-qm", "later work, not proposed")
    reply = await request(hive, sha[:10])
    assert reply["kind"] == "ok", reply
    approval_id = reply["id"]
    assert tag_exists(paths.applied, f"proposal/{approval_id}")
    assert git(paths.applied, "rev-parse", "main") == before, "nothing deployed before approval"
    info = hive.approvals.get(approval_id)
    assert (info.status, info.fetched_sha, info.commit_ref) == ("pending", sha, sha[:10])
    diff = await hive.approvals.diff(approval_id)
    assert '+  hyperhive.allowedRecipients = [ "bob" ];' in diff
    shown = await call(hive.settings.host_socket, "diff", id=approval_id)
    assert shown["message"] == diff
    await drain(paths.socket)

    approved = await call(hive.settings.host_socket, "approve", id=approval_id)
    assert approved["kind"] == "ok", approved
    await until(lambda: tag_exists(paths.applied, f"deployed/{approval_id}"), what="deployed tag")
    await hive.approvals.wait_idle()
    assert tag_exists(paths.applied, f"approved/{approval_id}")
    assert git(paths.applied, "rev-parse", "main") == sha
    assert (paths.applied / "agent.nix").read_text() == AGENT_NIX
    assert hive.approvals.get(approval_id).status == "approved"
    assert hive.registry.get("alice").allowed_recipients == ["bob"]
    assert hive.registry.get("alice").state == "running"
    resolved = events(hive, "approval_resolved")
    assert [(e["id"], e["status"]) for e in resolved] == [(approval_id, "approved")]
    assert [e["agent"] for e in events(hive, "rebuilt")] == ["alice"]
    kicks = await drain(paths.socket)
    assert any("rebuilt" in m["body"] for m in kicks), kicks
    # the allow-list is enforced by the broker at once
    refused = await call(paths.socket, "send", to="manager", body="still fine")
    assert refused["kind"] == "ok"


async def test_failing_build_tags_failed_with_the_error_and_resets_main(hive: Hive) -> None:
    if shutil.which("nix-instantiate") is None:
        pytest.fail("nix-instantiate (Debian nix-bin) is needed: it is the local build check")
    paths = hive.lifecycle.paths("alice")  # type: ignore[arg-type]
    before = git(paths.applied, "rev-parse", "main")
    sha = manager_commit(paths.config, '{ pkgs, ... }:\n{\n  hyperhive.model = "x"\n', "broken")
    approval_id = (await request(hive, sha))["id"]
    assert (await call(hive.settings.host_socket, "approve", id=approval_id))["kind"] == "ok"
    await until(lambda: hive.approvals.get(approval_id).status == "failed", what="failed")
    await hive.approvals.wait_idle()
    info = hive.approvals.get(approval_id)
    assert info.note is not None
    assert "syntax error" in info.note
    assert git(paths.applied, "rev-parse", "main") == before
    assert git(paths.applied, "status", "--porcelain") == ""
    assert tag_exists(paths.applied, f"failed/{approval_id}")
    assert not tag_exists(paths.applied, f"deployed/{approval_id}")
    message = git(paths.applied, "tag", "-l", "--format=%(contents)", f"failed/{approval_id}")
    assert "syntax error" in message
    assert git(paths.applied, "cat-file", "-t", f"failed/{approval_id}") == "tag"  # annotated
    failed = events(hive, "deploy_failed")
    assert [e["id"] for e in failed] == [approval_id]
    assert hive.registry.get("alice").state == "running"


async def test_deny_tags_denied_with_the_note(hive: Hive) -> None:
    paths = hive.lifecycle.paths("alice")  # type: ignore[arg-type]
    before = git(paths.applied, "rev-parse", "main")
    sha = manager_commit(paths.config, AGENT_NIX)
    approval_id = (await request(hive, sha))["id"]
    reply = await call(hive.settings.host_socket, "deny", id=approval_id, note="not bob, please")
    assert reply["kind"] == "ok", reply
    message = git(paths.applied, "tag", "-l", "--format=%(contents)", f"denied/{approval_id}")
    assert message == "not bob, please"
    assert git(paths.applied, "rev-list", "-n1", f"denied/{approval_id}") == sha
    assert git(paths.applied, "rev-parse", "main") == before
    info = hive.approvals.get(approval_id)
    assert (info.status, info.note) == ("denied", "not bob, please")
    assert [(e["status"], e["note"]) for e in events(hive, "approval_resolved")] == [
        ("denied", "not bob, please")
    ]
    again = await call(hive.settings.host_socket, "approve", id=approval_id)
    assert again["kind"] == "err"
    assert "already denied" in again["message"]


@pytest.mark.parametrize(
    "ref", ["main", "HEAD", "deadbeef", "cafe1234", "abc", "0123456789abcdef" * 3]
)
async def test_a_branch_name_or_unknown_sha_is_refused(hive: Hive, ref: str) -> None:
    paths = hive.lifecycle.paths("alice")  # type: ignore[arg-type]
    manager_commit(paths.config, AGENT_NIX)
    git(paths.config, "branch", "deadbeef")  # a branch whose name looks like a sha
    reply = await request(hive, ref)
    assert reply["kind"] == "err", reply
    assert "sha" in reply["message"] or "no commit" in reply["message"]
    assert hive.approvals.list_pending() == []
    assert git(paths.applied, "tag", "-l") == ""


async def test_the_same_approval_approved_twice_acts_once(hive: Hive) -> None:
    paths = hive.lifecycle.paths("alice")  # type: ignore[arg-type]
    sha = manager_commit(paths.config, AGENT_NIX)
    approval_id = (await request(hive, sha))["id"]
    host = hive.settings.host_socket
    replies = await asyncio.gather(*(call(host, "approve", id=approval_id) for _ in range(4)))
    assert sorted(r["kind"] for r in replies) == ["err", "err", "err", "ok"]
    await hive.approvals.wait_idle()
    assert tag_exists(paths.applied, f"deployed/{approval_id}")
    assert len(events(hive, "approval_resolved")) == 1
    assert len(events(hive, "rebuilt")) == 1


async def test_not_a_fast_forward_fails_and_keeps_main(hive: Hive) -> None:
    paths = hive.lifecycle.paths("alice")  # type: ignore[arg-type]
    first = manager_commit(paths.config, AGENT_NIX, "one")
    git(paths.config, "reset", "-q", "--hard", "HEAD~1")
    other = manager_commit(paths.config, AGENT_NIX.replace("sonnet", "opus"), "two")
    one = (await request(hive, first))["id"]
    two = (await request(hive, other))["id"]
    await call(hive.settings.host_socket, "approve", id=one)
    await hive.approvals.wait_idle()
    await call(hive.settings.host_socket, "approve", id=two)
    await hive.approvals.wait_idle()
    assert hive.approvals.get(two).status == "failed"
    assert "not a fast-forward" in (hive.approvals.get(two).note or "")
    assert git(paths.applied, "rev-parse", "main") == first


async def test_orphaned_approval_is_failed_with_a_note(hive: Hive) -> None:
    paths = hive.lifecycle.paths("alice")  # type: ignore[arg-type]
    approval_id = (await request(hive, manager_commit(paths.config, AGENT_NIX)))["id"]
    shutil.rmtree(paths.root)
    pending = await call(hive.settings.host_socket, "pending")
    assert pending["items"] == []
    info = hive.approvals.get(approval_id)
    assert (info.status, info.note) == ("failed", "agent state dir missing")


async def test_destroy_fails_the_agents_pending_approvals(hive: Hive) -> None:
    paths = hive.lifecycle.paths("alice")  # type: ignore[arg-type]
    approval_id = (await request(hive, manager_commit(paths.config, AGENT_NIX)))["id"]
    assert (await call(hive.settings.host_socket, "destroy", name="alice"))["kind"] == "ok"
    assert hive.approvals.get(approval_id).status == "failed"
    assert [e["status"] for e in events(hive, "approval_resolved")] == ["failed"]


async def test_spawn_approval_returns_at_once_and_spawns_in_the_background(
    tmp_path: Path,
) -> None:
    async with running_hive(tmp_path, harness=False) as hive:
        changes = hive.hub.subscribe()
        request_id = (
            await call(manager_sock(hive), "request_spawn", name="carol", description="a tester")
        )["id"]
        reply = await call(hive.settings.host_socket, "approve", id=request_id)
        assert reply["kind"] == "ok", reply
        assert "background" in reply["message"]
        await hive.approvals.wait_idle()
        await hive.lifecycle.wait_idle()
        states = []
        while not changes.empty():
            change = changes.get_nowait()
            if change.kind == "agent" and change.data.get("name") == "carol":
                states.append(change.data["state"])
        assert states[0] == "spawning"
        assert states[-1] == "running"
        paths = hive.lifecycle.paths("carol")  # type: ignore[arg-type]
        assert (paths.config / "agent.nix").is_file()
        assert git(paths.applied, "rev-parse", "main") == git(paths.config, "rev-parse", "main")
        identity = json.loads((paths.applied / "hyperhive-identity.json").read_text())
        assert identity["name"] == "carol"
        assert identity["role"] == "agent"
        assert [e["status"] for e in events(hive, "approval_resolved")] == ["approved"]
        assert [e["agent"] for e in events(hive, "spawned")] == ["carol"]


async def test_an_approval_cut_short_by_a_restart_is_deployed_at_startup(tmp_path: Path) -> None:
    async with running_hive(tmp_path, harness=False) as hive:
        assert (await call(hive.settings.host_socket, "spawn", name="alice"))["kind"] == "ok"
        paths = hive.lifecycle.paths("alice")  # type: ignore[arg-type]
        sha = manager_commit(paths.config, AGENT_NIX)
        approval_id = (await request(hive, sha))["id"]
        # What a daemon killed right after committing the decision leaves behind: the
        # approval approved (and reported), nothing deployed yet.
        assert await hive.approvals._decide(
            hive.approvals.get(approval_id), ApprovalStatus.APPROVED
        )
        assert not tag_exists(paths.applied, f"approved/{approval_id}")
    async with running_hive(tmp_path, harness=False) as hive:
        await until(lambda: tag_exists(paths.applied, f"deployed/{approval_id}"), what="deploy")
        await hive.approvals.wait_idle()
        assert git(paths.applied, "rev-parse", "main") == sha
        assert hive.approvals.get(approval_id).status == "approved"
        assert len(events(hive, "approval_resolved")) == 1, "the decision is told once"


@pytest.mark.parametrize("name", ["flake.nix", "flake.lock"])
async def test_a_commit_that_changes_the_agents_flake_is_refused(hive: Hive, name: str) -> None:
    """The nixos backend builds the applied flake as root: a flake input the manager adds
    (`path:/var/lib/hyperhive/operator-secret`) would be copied into the world-readable
    store. The daemon owns flake.nix and flake.lock; the manager edits agent.nix only."""
    paths = hive.lifecycle.paths("alice")  # type: ignore[arg-type]
    hostile = 'inputs.s = { url = "path:/var/lib/hyperhive/operator-secret"; flake = false; };\n'
    target = paths.config / name
    target.write_text((target.read_text() if target.exists() else "") + f"# {hostile}")
    git(paths.config, "add", name)
    git(paths.config, "-c", "user.name=m", "-c", "user.email=m@h", "commit", "-qm", "inputs")
    sha = git(paths.config, "rev-parse", "HEAD")
    reply = await request(hive, sha)
    assert reply["kind"] == "err", reply
    assert name in reply["message"]
    assert "agent.nix" in reply["message"]
    assert hive.approvals.list_pending() == []


async def test_a_misleading_approved_tag_does_not_move_the_rollback_point(hive: Hive) -> None:
    """A tag `approved/<id>` already in the applied repo (left by an earlier broker.sqlite:
    a restored backup hands out ids again) whose message names another commit: a failed
    build still puts main back where it was, not where the message says."""
    if shutil.which("nix-instantiate") is None:
        pytest.fail("nix-instantiate (Debian nix-bin) is needed: it is the local build check")
    paths = hive.lifecycle.paths("alice")  # type: ignore[arg-type]
    seed = git(paths.applied, "rev-parse", "main")
    first = manager_commit(paths.config, AGENT_NIX)
    first_id = (await request(hive, first))["id"]
    assert (await call(hive.settings.host_socket, "approve", id=first_id))["kind"] == "ok"
    await until(lambda: tag_exists(paths.applied, f"deployed/{first_id}"), what="deployed")
    await hive.approvals.wait_idle()
    assert git(paths.applied, "rev-parse", "main") == first
    broken = manager_commit(paths.config, '{ pkgs, ... }:\n{\n  hyperhive.model = "x"\n', "bad")
    approval_id = (await request(hive, broken))["id"]
    git(paths.applied, "tag", "-a", f"approved/{approval_id}", "-m", f"main was {seed}", broken)
    assert (await call(hive.settings.host_socket, "approve", id=approval_id))["kind"] == "ok"
    await until(lambda: hive.approvals.get(approval_id).status == "failed", what="failed")
    await hive.approvals.wait_idle()
    assert "syntax error" in (hive.approvals.get(approval_id).note or "")
    assert git(paths.applied, "rev-parse", "main") == first, "rolled back past a deployed commit"
    assert git(paths.applied, "status", "--porcelain") == ""


async def cut_short(hive: Hive, approval_id: int, sha: str, tag_message: str) -> None:
    """What a daemon killed mid-deploy leaves: the approval approved, its approved/<id> tag
    written and main fast-forwarded to `sha`, nothing rebuilt."""
    paths = hive.lifecycle.paths("alice")  # type: ignore[arg-type]
    assert await hive.approvals._decide(hive.approvals.get(approval_id), ApprovalStatus.APPROVED)
    git(paths.applied, "tag", "-a", f"approved/{approval_id}", "-m", tag_message, sha)
    git(paths.applied, "merge", "-q", "--ff-only", sha)


async def test_a_resumed_deploy_rolls_back_to_the_recorded_point_not_the_tags(
    tmp_path: Path,
) -> None:
    if shutil.which("nix-instantiate") is None:
        pytest.fail("nix-instantiate (Debian nix-bin) is needed: it is the local build check")
    async with running_hive(tmp_path, harness=False) as hive:
        assert (await call(hive.settings.host_socket, "spawn", name="alice"))["kind"] == "ok"
        paths = hive.lifecycle.paths("alice")  # type: ignore[arg-type]
        seed = git(paths.applied, "rev-parse", "main")
        first = manager_commit(paths.config, AGENT_NIX)
        git(paths.applied, "fetch", "-q", str(paths.config), first)
        git(paths.applied, "merge", "-q", "--ff-only", first)
        broken = manager_commit(paths.config, '{ pkgs, ... }:\n{\n  hyperhive.model = "x"\n')
        approval_id = (await request(hive, broken))["id"]
        recorded = await hive.db.write(
            lambda conn: approval_store.record_rollback_sha(conn, approval_id, first)
        )
        assert recorded == first
        await cut_short(hive, approval_id, broken, f"approved; main was {seed}")
    async with running_hive(tmp_path, harness=False) as hive:
        await until(lambda: hive.approvals.get(approval_id).status == "failed", what="failed")
        await hive.approvals.wait_idle()
        assert "syntax error" in (hive.approvals.get(approval_id).note or "")
        assert git(paths.applied, "rev-parse", "main") == first


async def test_a_deploy_an_older_daemon_began_is_failed_clearly_not_resumed(
    tmp_path: Path,
) -> None:
    """An approval row from before the rollback point had a column, whose deploy was cut
    short: the point was only in the tag's message, which is not read back."""
    async with running_hive(tmp_path, harness=False) as hive:
        assert (await call(hive.settings.host_socket, "spawn", name="alice"))["kind"] == "ok"
        paths = hive.lifecycle.paths("alice")  # type: ignore[arg-type]
        seed = git(paths.applied, "rev-parse", "main")
        sha = manager_commit(paths.config, AGENT_NIX)
        approval_id = (await request(hive, sha))["id"]
        await cut_short(hive, approval_id, sha, f"approved; main was {seed}")
    async with running_hive(tmp_path, harness=False) as hive:
        await until(lambda: hive.approvals.get(approval_id).status == "failed", what="failed")
        await hive.approvals.wait_idle()
        note = hive.approvals.get(approval_id).note or ""
        assert "older hive-c0re" in note
        assert "request again" in note
        assert tag_exists(paths.applied, f"failed/{approval_id}")
        assert not tag_exists(paths.applied, f"deployed/{approval_id}")
        assert [e["id"] for e in events(hive, "deploy_failed")] == [approval_id]
        assert git(paths.applied, "rev-parse", "main") == sha, "nothing reset on a guess"


def test_rows_from_before_the_rollback_column_read_as_unrecorded(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "b.sqlite", isolation_level=None)
    migrate(conn, BROKER_MIGRATIONS[:1])
    conn.execute(
        "INSERT INTO approvals (agent, kind, fetched_sha, requested_at, status)"
        " VALUES ('alice', 'apply_commit', 'ab', 1, 'approved')"
    )
    assert migrate(conn, BROKER_MIGRATIONS) == len(BROKER_MIGRATIONS)
    assert approval_store.rollback_sha(conn, 1) is None
    assert approval_store.record_rollback_sha(conn, 1, "c" * 40) == "c" * 40
    assert approval_store.record_rollback_sha(conn, 1, "d" * 40) == "c" * 40, "recorded once"
    conn.close()

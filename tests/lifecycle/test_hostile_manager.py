"""A hostile (prompt-injected) manager against the config repos (issue 13).

The manager writes its `/agents` bind at will: it can pre-seed a repo before a spawn,
commit symlinks to host files, and plant hooks or an fsmonitor in any proposed repo. After
each attack no host file outside the hive changed, nothing of a host file reached the
manager, and nothing it planted ran as root. Local backend, plus one nspawn test that
looks from inside the manager's real container.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import stat
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hivetest import call, running_hive
from hyperhive.agents.names import MANAGER, AgentName
from hyperhive.daemon import Hive
from hyperhive.lifecycle.harness_env import harness_environment
from hyperhive.lifecycle.mounts import AGENTS_DIR, APPLIED_DIR
from hyperhive.lifecycle.nspawn import binds_for
from hyperhive.settings import BackendKind
from lifecycle.support import api_key_operator, harness_online, require_nspawn, until
from standin.api import StandIn

SECRET = "root:x:0:0:SECRET-HOST-LINE-7f3a:/root:/bin/bash\nSECOND-SECRET-LINE-91c2 = {\n"

GIT_SAFE = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false"]


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *GIT_SAFE, "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout.strip()


def manager_commit(repo: Path, message: str = "change") -> str:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=manager", "-c", "user.email=m@hm1nd", "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


def host_file(tmp_path: Path) -> tuple[Path, bytes]:
    """A stand-in for a host file (/etc/passwd): it must never change or leak."""
    target = tmp_path / "host" / "passwd"
    target.parent.mkdir()
    target.write_text(SECRET)
    return target, target.read_bytes()


def manager_socket(hive: Hive) -> Path:
    return hive.lifecycle.paths(MANAGER).socket


def everything_the_manager_was_told(hive: Hive) -> str:
    return "\n".join(row.body for row in hive.broker.recent(MANAGER, 1000))


def everything_recorded(hive: Hive, applied: Path) -> str:
    """Approval notes, the manager's inbox and every tag message of the applied repo."""
    notes = [a.note or "" for a in hive.approvals._db.read(_all_approvals)]
    tags = git(applied, "tag", "-l", "--format=%(contents)") if (applied / ".git").is_dir() else ""
    return "\n".join([*notes, everything_the_manager_was_told(hive), tags])


def _all_approvals(conn: Any) -> list[Any]:
    from hyperhive.approvals.store import list_recent

    return list_recent(conn, 1000)


def leaked(text: str) -> bool:
    return "SECRET-HOST-LINE" in text or "SECOND-SECRET-LINE" in text


@pytest.fixture
async def hive(tmp_path: Path) -> AsyncIterator[Hive]:
    async with running_hive(tmp_path, harness=False) as hive:
        yield hive


async def spawn_through_approval(hive: Hive, name: str) -> dict[str, Any]:
    """request_spawn as the manager, approve as the operator; the request's reply."""
    reply = await call(manager_socket(hive), "request_spawn", name=name, description="helper")
    if reply["kind"] != "ok":
        return reply
    approved = await call(hive.settings.host_socket, "approve", id=reply["id"])
    await hive.approvals.wait_idle()
    await hive.lifecycle.wait_idle()
    return {**reply, "approve": approved}


# -- pre-seeded repos -------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["before the request", "after the request"])
async def test_a_preseeded_identity_symlink_is_refused_and_the_host_file_kept(
    hive: Hive, tmp_path: Path, when: str
) -> None:
    target, before = host_file(tmp_path)
    repo = hive.lifecycle.paths(AgentName("mallory")).config

    def plant() -> None:
        repo.mkdir(parents=True, exist_ok=True)
        (repo / "hyperhive-identity.json").symlink_to(target)

    if when == "before the request":
        plant()
        reply = await spawn_through_approval(hive, "mallory")
    else:
        reply = await call(manager_socket(hive), "request_spawn", name="mallory", description="x")
        assert reply["kind"] == "ok", reply
        plant()
        await call(hive.settings.host_socket, "approve", id=reply["id"])
        await hive.approvals.wait_idle()
        await hive.lifecycle.wait_idle()
    assert target.read_bytes() == before, "a host file was overwritten through the repo"
    if reply["kind"] == "ok":
        info = hive.approvals.get(reply["id"])
        assert info.status == "failed", info
        assert "did not create" in (info.note or ""), info.note
    else:
        assert "did not create" in reply["message"], reply
    record = hive.registry.find("mallory")
    assert record is None or record.state != "running"
    assert not leaked(everything_the_manager_was_told(hive))


async def test_a_preseeded_config_is_not_deployed(hive: Hive, tmp_path: Path) -> None:
    repo = hive.lifecycle.paths(AgentName("mallory")).config
    shutil.copytree(hive.settings.agent_template_dir, repo)
    for path in sorted(repo.rglob("*"), reverse=True):
        path.chmod(0o755 if path.is_dir() else 0o644)
    (repo / "agent.nix").write_text(
        '{ ... }: {\n  hyperhive.allowedRecipients = [ "bob" ];\n'
        '  system.stateVersion = "25.11";\n}\n'
    )
    (repo / "UNSEEN").write_text("a config nobody reviewed\n")
    git(repo, "init", "-q", "-b", "main")
    manager_commit(repo, "a config nobody saw")
    reply = await spawn_through_approval(hive, "mallory")
    applied = hive.lifecycle.paths(AgentName("mallory")).applied
    assert not (applied / "UNSEEN").exists(), "a config nobody saw was deployed"
    if reply["kind"] == "ok":
        info = hive.approvals.get(reply["id"])
        assert info.status == "failed", info
        assert "did not create" in (info.note or "")
    else:
        assert "did not create" in reply["message"], reply
    record = hive.registry.find("mallory")
    assert record is None or record.allowed_recipients == []


# -- symlinks committed by the manager --------------------------------------------------------


async def spawned(hive: Hive, name: str = "alice") -> Path:
    reply = await call(hive.settings.host_socket, "spawn", name=name)
    assert reply["kind"] == "ok", reply
    return hive.lifecycle.paths(AgentName(name)).config


async def propose_and_approve(hive: Hive, sha: str, agent: str = "alice") -> int:
    reply = await call(
        manager_socket(hive), "request_apply_commit", agent=agent, commit_ref=sha, description="d"
    )
    assert reply["kind"] == "ok", reply
    approved = await call(hive.settings.host_socket, "approve", id=reply["id"])
    assert approved["kind"] == "ok", approved
    await hive.approvals.wait_idle()
    return int(reply["id"])


async def test_a_symlinked_agent_nix_leaks_no_line_of_its_target(
    hive: Hive, tmp_path: Path
) -> None:
    target, before = host_file(tmp_path)
    repo = await spawned(hive)
    (repo / "agent.nix").unlink()
    (repo / "agent.nix").symlink_to(target)
    approval_id = await propose_and_approve(hive, manager_commit(repo, "agent.nix -> host"))
    info = hive.approvals.get(approval_id)
    assert info.status == "failed", info
    applied = hive.lifecycle.paths(AgentName("alice")).applied
    assert not leaked(everything_recorded(hive, applied))
    assert "agent.nix" in (info.note or "")
    # the manager asking for a rebuild gets an error, and it carries no line either
    reply = await call(manager_socket(hive), "update", name="alice")
    assert not leaked(json.dumps(reply))
    assert target.read_bytes() == before


async def test_an_identity_symlink_committed_by_the_manager_is_replaced_not_followed(
    hive: Hive, tmp_path: Path
) -> None:
    target, before = host_file(tmp_path)
    repo = await spawned(hive)
    (repo / "hyperhive-identity.json").unlink()
    (repo / "hyperhive-identity.json").symlink_to(target)
    await propose_and_approve(hive, manager_commit(repo, "identity -> host"))
    assert target.read_bytes() == before, "a host file was overwritten with the identity"
    identity = hive.lifecycle.paths(AgentName("alice")).applied / "hyperhive-identity.json"
    assert stat.S_ISREG(identity.lstat().st_mode)
    assert json.loads(identity.read_text())["name"] == "alice"
    assert not leaked(everything_the_manager_was_told(hive))


# -- hooks and config planted in a proposed repo -----------------------------------------------

HOOKS = (
    "pre-commit",
    "post-commit",
    "commit-msg",
    "prepare-commit-msg",
    "post-checkout",
    "post-merge",
    "pre-push",
    "reference-transaction",
    "post-index-change",
    "pre-auto-gc",
    "post-rewrite",
)


def plant_everything(repo: Path, marker: Path) -> None:
    """Every way a repo can make git run a program, each one touching `marker`."""
    script = repo.parent / f"{repo.name}-evil.sh"
    script.write_text(f'#!/bin/sh\necho "$0 $*" >> {marker}\nexit 0\n')
    script.chmod(0o755)
    hooks = repo / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    for hook in HOOKS:
        (hooks / hook).write_text(script.read_text())
        (hooks / hook).chmod(0o755)
    evil = str(script)
    for key, value in (
        ("core.fsmonitor", evil),
        ("core.hooksPath", str(hooks)),
        ("core.sshCommand", evil),
        ("core.pager", evil),
        ("core.editor", evil),
        ("core.askPass", evil),
        ("core.gitProxy", evil),
        ("core.alternateRefsCommand", evil),
        ("uploadpack.packObjectsHook", evil),
        ("diff.external", evil),
        ("filter.evil.clean", evil),
        ("filter.evil.smudge", evil),
        ("filter.evil.process", evil),
        ("diff.evil.textconv", evil),
        ("credential.helper", f"!{evil}"),
        ("gc.auto", "1"),
    ):
        subprocess.run(
            ["git", "config", "--file", str(repo / ".git" / "config"), key, value], check=True
        )


async def test_hooks_and_an_fsmonitor_planted_in_the_proposed_repo_never_run(
    hive: Hive, tmp_path: Path
) -> None:
    marker = tmp_path / "ran-as-root"
    repo = await spawned(hive)
    (repo / ".gitattributes").write_text("* filter=evil diff=evil\n")
    (repo / "agent.nix").write_text((repo / "agent.nix").read_text() + "# planted\n")
    first = manager_commit(repo, "attributes")
    (repo / "agent.nix").write_text((repo / "agent.nix").read_text() + "# two\n")
    second = manager_commit(repo, "two")
    plant_everything(repo, marker)
    host = hive.settings.host_socket
    deployed = await propose_and_approve(hive, first)
    assert hive.approvals.get(deployed).status == "approved"
    reply = await call(
        manager_socket(hive), "request_apply_commit", agent="alice", commit_ref=second[:9]
    )
    assert reply["kind"] == "ok", reply
    await hive.approvals.diff(reply["id"])
    await call(host, "deny", id=reply["id"], note="no")
    await call(host, "rebuild", name="alice")
    await call(host, "destroy", name="alice")
    revive = await spawn_through_approval(hive, "alice")
    assert revive["kind"] == "ok", revive
    await hive.approvals.diff(revive["id"])
    assert not marker.exists(), marker.read_text()


def has_commit(repo: Path, sha: str) -> bool:
    probe = ["git", "-C", str(repo), "cat-file", "-e", f"{sha}^{{commit}}"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def host_repo(tmp_path: Path) -> tuple[Path, str]:
    """A git repository elsewhere on the host, with a commit the manager must never get."""
    repo = tmp_path / "host" / "secret-repo"
    repo.mkdir(parents=True)
    (repo / "secret.txt").write_text(SECRET)
    git(repo, "init", "-q", "-b", "main")
    return repo, manager_commit(repo, "host secret")


@pytest.mark.parametrize("how", ["git-symlink", "gitfile", "alternates", "objects-symlink"])
async def test_a_proposal_never_reads_another_repository_on_the_host(
    hive: Hive, tmp_path: Path, how: str
) -> None:
    secret_repo, secret_sha = host_repo(tmp_path)
    repo = await spawned(hive)
    dot_git = repo / ".git"
    if how == "git-symlink":
        shutil.rmtree(dot_git)
        dot_git.symlink_to(secret_repo / ".git")
    elif how == "gitfile":
        shutil.rmtree(dot_git)
        dot_git.write_text(f"gitdir: {secret_repo / '.git'}\n")
    elif how == "alternates":
        (dot_git / "objects" / "info").mkdir(exist_ok=True)
        (dot_git / "objects" / "info" / "alternates").write_text(
            f"{secret_repo / '.git' / 'objects'}\n"
        )
        (dot_git / "refs" / "heads" / "leak").write_text(secret_sha + "\n")
    else:
        shutil.rmtree(dot_git / "objects")
        (dot_git / "objects").symlink_to(secret_repo / ".git" / "objects")
        (dot_git / "refs" / "heads" / "leak").write_text(secret_sha + "\n")
    reply = await call(
        manager_socket(hive), "request_apply_commit", agent="alice", commit_ref=secret_sha
    )
    assert reply["kind"] == "err", reply
    applied = hive.lifecycle.paths(AgentName("alice")).applied
    assert not has_commit(applied, secret_sha), "a host repository's commit reached /applied"
    assert not leaked(reply["message"])
    assert hive.approvals.list_pending() == []


def object_inodes(repo: Path) -> dict[str, tuple[int, int]]:
    objects = repo / ".git" / "objects"
    return {
        str(p.relative_to(objects)): (p.stat().st_ino, p.stat().st_nlink)
        for p in objects.rglob("*")
        if p.is_file()
    }


async def test_the_proposed_repo_shares_no_object_file_with_the_applied_one(hive: Hive) -> None:
    """An object file shared with the applied repo could be rewritten in place through
    /agents; neither a fresh seed nor a recreated proposed repo shares one."""
    repo = await spawned(hive)
    applied = hive.lifecycle.paths(AgentName("alice")).applied
    for _ in range(2):
        proposed_objects = object_inodes(repo)
        applied_objects = object_inodes(applied)
        assert proposed_objects, "the proposed repo has objects"
        assert all(nlink == 1 for _, nlink in proposed_objects.values())
        shared = {ino for ino, _ in proposed_objects.values()} & {
            ino for ino, _ in applied_objects.values()
        }
        assert shared == set()
        # the manager deletes its repo: a rebuild recreates it from the applied one
        shutil.rmtree(repo)
        reply = await call(hive.settings.host_socket, "rebuild", name="alice")
        assert reply["kind"] == "ok", reply
        assert git(repo, "rev-parse", "main") == git(applied, "rev-parse", "main")


# -- revive: the operator sees what will be deployed ---------------------------------------------


async def test_a_revive_approval_carries_its_diff_against_the_template(hive: Hive) -> None:
    repo = await spawned(hive)
    (repo / "agent.nix").write_text(
        (repo / "agent.nix").read_text() + "# REVIVED-CHANGE-4711: deployed before the destroy\n"
    )
    await propose_and_approve(hive, manager_commit(repo, "a change"))
    host = hive.settings.host_socket
    assert (await call(host, "destroy", name="alice"))["kind"] == "ok"
    reply = await call(manager_socket(hive), "request_spawn", name="alice", description="back")
    assert reply["kind"] == "ok", reply
    text = await hive.approvals.diff(reply["id"])
    assert "+# REVIVED-CHANGE-4711" in text, text
    shown = await call(host, "diff", id=reply["id"])
    assert "REVIVED-CHANGE-4711" in shown["message"]
    # a fresh spawn deploys the template itself: nothing to show
    fresh = await call(manager_socket(hive), "request_spawn", name="zed", description="new")
    assert await hive.approvals.diff(fresh["id"]) == ""


# -- the old layout is migrated at start-up ------------------------------------------------------


def old_layout(state: Path, host_dir: Path) -> None:
    """What an older daemon left: agents/<name>/config repos, applied cloned with hardlinks."""
    for name in ("alice", "carol"):
        config = state / "agents" / name / "config"
        config.mkdir(parents=True)
        (state / "agents" / name / "claude").mkdir()
        (state / "agents" / name / "state").mkdir()
        (config / "agent.nix").write_text(f"# {name}\n{{ ... }}: {{ }}\n")
        git(config, "init", "-q", "-b", "main")
        manager_commit(config, "seed")
        (state / "applied").mkdir(exist_ok=True)
        subprocess.run(
            ["git", "clone", "-q", str(config), str(state / "applied" / name)], check=True
        )
    # carol was already moved once (a crash after the move): both exist, none is clobbered
    (state / "proposed" / "carol").mkdir(parents=True)
    (state / "proposed" / "carol" / "KEEP").write_text("newer\n")
    # a planted symlink in the old tree must never be followed
    (state / "agents" / "eve").mkdir()
    (state / "agents" / "eve" / "config").symlink_to(host_dir)
    (state / "agents" / "evil").symlink_to(host_dir)


async def test_an_old_layout_is_migrated_at_startup(tmp_path: Path) -> None:
    state = tmp_path / "state"
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    (host_dir / "config").mkdir()
    (host_dir / "config" / "precious").write_text("host data\n")
    old_layout(state, host_dir)
    objects = [
        p for p in (state / "applied" / "alice" / ".git" / "objects").rglob("*") if p.is_file()
    ]
    assert any(p.stat().st_nlink > 1 for p in objects), "the old clone shares objects"
    for _ in range(2):  # idempotent
        async with running_hive(tmp_path, harness=False):
            pass
        alice = state / "proposed" / "alice"
        assert (alice / "agent.nix").read_text().startswith("# alice")
        assert git(alice, "rev-parse", "main")
        assert not (state / "agents" / "alice" / "config").exists()
        assert (state / "agents" / "alice" / "claude").is_dir()
        assert (state / "proposed" / "carol" / "KEEP").read_text() == "newer\n"
        assert (state / "agents" / "carol" / "config" / "agent.nix").is_file()
        assert not (state / "proposed" / "eve").exists()
        assert not (state / "proposed" / "evil").exists()
        assert (host_dir / "config" / "precious").read_text() == "host data\n"
        assert sorted(p.name for p in host_dir.iterdir()) == ["config"]
        applied = state / "applied" / "alice" / ".git" / "objects"
        assert all(p.stat().st_nlink == 1 for p in applied.rglob("*") if p.is_file())


# -- the manager's reach -------------------------------------------------------------------------


async def test_the_managers_binds_and_env_name_only_the_repos(hive: Hive) -> None:
    settings = hive.settings
    manager = hive.lifecycle.paths(MANAGER)
    targets = {b.container: b for b in binds_for(settings, manager)}
    assert targets[AGENTS_DIR].host == str(settings.state_dir / "proposed")
    assert targets[APPLIED_DIR].read_only
    for bind in targets.values():
        host = Path(bind.host)
        assert host != settings.state_dir / "agents"
        assert settings.state_dir / "agents" not in host.parents or MANAGER in host.parts
    env = harness_environment(settings, manager, inside=False)
    assert env["HYPERHIVE_AGENTS_DIR"] == str(settings.state_dir / "proposed")
    assert env["HYPERHIVE_APPLIED_DIR"] == str(settings.state_dir / "applied")
    for value in env.values():
        assert value.rstrip("/") != str(settings.state_dir / "agents")
    inside = harness_environment(settings, manager, inside=True)
    assert (inside["HYPERHIVE_AGENTS_DIR"], inside["HYPERHIVE_APPLIED_DIR"]) == (
        AGENTS_DIR,
        APPLIED_DIR,
    )


@pytest.fixture
async def nspawn_hive(
    tmp_path: Path, standin: StandIn, claude_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Hive]:
    require_nspawn()
    api_key_operator(monkeypatch, standin, claude_bin, "reach")
    async with running_hive(
        tmp_path, backend=BackendKind.NSPAWN, crash_watch_seconds=0.2, stop_timeout_seconds=5
    ) as hive:
        yield hive


PROBE = """
for p in /agents/{name}/claude /agents/{name}/state /agents/{name}/config/agent.nix \
         /agents/manager/claude /agents/manager/state {state}/agents; do
  if ls -a "$p" >/dev/null 2>&1; then echo "OPENED $p"; else echo "closed $p"; fi
done
cat /agents/{name}/agent.nix >/dev/null && echo "read agent.nix"
echo "# edited by the manager" >> /agents/{name}/agent.nix && echo "wrote agent.nix"
touch /applied/{name}/x 2>/dev/null && echo "WROTE applied" || echo "applied read-only"
echo "--- mounts"
cat /proc/self/mountinfo
"""


async def test_the_managers_container_reaches_the_repos_but_no_claude_or_state(
    nspawn_hive: Hive,
) -> None:
    hive = nspawn_hive
    name = "ns-vic"
    assert (await call(hive.settings.host_socket, "spawn", name=name))["kind"] == "ok"
    agent = hive.lifecycle.paths(AgentName(name))
    (agent.claude / ".credentials.json").write_text('{"token": "CREDENTIAL-SECRET"}')
    (agent.state / "notes.md").write_text("private notes\n")
    manager = hive.lifecycle.paths(MANAGER)
    backend = hive.lifecycle.backend
    await until(lambda: harness_online(manager.harness_log, MANAGER), 60, "manager up")
    leader = await until(lambda: backend.leader(manager), 30, "manager leader")  # type: ignore[attr-defined]
    script = PROBE.format(name=name, state=hive.settings.state_dir)
    proc = await asyncio.create_subprocess_exec(
        "nsenter", "-t", str(leader), "-a", "/bin/sh", "-c", script,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    raw_out, raw_err = await asyncio.wait_for(proc.communicate(), 30)
    out, err = raw_out.decode(), raw_err.decode()
    assert "OPENED" not in out, out + err
    assert "read agent.nix" in out, out + err
    assert "wrote agent.nix" in out, out + err
    assert "applied read-only" in out, out
    # nothing of any agent's tree is mounted anywhere in the container: each mount's
    # source path (mountinfo's 4th field) is checked, not only the paths probed above
    mounts = [line.split()[3] for line in out.split("--- mounts\n", 1)[1].splitlines()]
    agents_tree = f"{hive.settings.state_dir.name}/agents"
    for source in mounts:
        assert f"{agents_tree}/{name}" not in source, source
        assert not source.rstrip("/").endswith(agents_tree), source
    assert (agent.config / "agent.nix").read_text().endswith("# edited by the manager\n")


async def test_a_manager_running_with_outdated_binds_is_restarted(
    nspawn_hive: Hive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an upgrade meets: a manager container started with other binds (the old
    whole-agents/ bind) keeps them until restarted; the daemon's start-up restarts it."""
    from hyperhive.lifecycle import nspawn
    from hyperhive.lifecycle.conf import Bind

    hive = nspawn_hive
    backend = hive.lifecycle.backend
    assert isinstance(backend, nspawn.NspawnBackend)
    manager = hive.lifecycle.paths(MANAGER)
    await until(lambda: backend.leader(manager), 30, "manager leader")
    assert not backend.stale_binds(manager)
    before = backend._supervisor.get(MANAGER)
    assert before is not None
    extra = tmp_path / "extra"
    extra.mkdir()
    current = nspawn.binds_for

    def wanted(settings: Any, paths: Any) -> list[Bind]:
        binds = current(settings, paths)
        if paths.name == MANAGER:
            binds.append(Bind(str(extra), "/extra", read_only=True))
        return binds

    monkeypatch.setattr(nspawn, "binds_for", wanted)
    assert backend.stale_binds(manager)
    await hive.reconcile.ensure_manager()
    after = backend._supervisor.get(MANAGER)
    assert after is not None
    assert after.pid != before.pid
    assert not backend.stale_binds(manager)
    assert hive.registry.get(MANAGER).state == "running"

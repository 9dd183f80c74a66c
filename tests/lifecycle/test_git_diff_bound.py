"""A diff the daemon shows (apply_commit and revive cards, `hive-c0re diff`) is read with a
bound: a manager's commit of a few KiB can expand to gigabytes of diff (one compressible
blob, listed many times in a tree), which once took the daemon to 2.7 GB of memory."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from hyperhive.lifecycle.git import Git


def git(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    out = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=m", "-c", "user.email=m@h", *args],
        input=stdin,
        capture_output=True,
        check=True,
        timeout=60,
    )
    return out.stdout.decode().strip()


def bomb(repo: Path, blob_mib: int, copies: int) -> tuple[str, str]:
    """(base, bomb) commits: the bomb lists one repetitive blob `copies` times."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "agent.nix").write_text("{ }\n")
    git(repo, "add", "agent.nix")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD")
    blob = git(repo, "hash-object", "-w", "--stdin", stdin=b"a\n" * (blob_mib * 512 * 1024))
    entries = "".join(f"100644 blob {blob}\tf{i}\n" for i in range(copies))
    tree = git(repo, "mktree", stdin=entries.encode())
    return base, git(repo, "commit-tree", tree, "-p", base, "-m", "bomb")


async def test_a_diff_bomb_is_cut_at_the_limit_and_git_does_not_run_on(tmp_path: Path) -> None:
    repo = tmp_path / "applied"
    base, bombed = bomb(repo, blob_mib=8, copies=8)  # 64 MiB of diff from ~20 KiB of repo
    started = time.monotonic()
    text = await Git("git").diff(repo, base, bombed, limit=256 * 1024)
    assert len(text.encode()) < 256 * 1024 + 200
    assert text.rstrip().endswith("look at the commit in the repo)")
    assert "diff cut at 256 KiB" in text
    assert time.monotonic() - started < 30


def edited(repo: Path) -> str:
    """A repo with one small edit on top of its base commit; the base."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "agent.nix").write_text("{ }\n")
    git(repo, "add", "agent.nix")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD")
    (repo / "agent.nix").write_text("{ pkgs, ... }: { }\n")
    git(repo, "commit", "-qam", "edit")
    return base


async def test_a_normal_diff_is_whole(tmp_path: Path) -> None:
    repo = tmp_path / "applied"
    base = edited(repo)
    text = await Git("git").diff(repo, base, "HEAD")
    assert "-{ }" in text
    assert "+{ pkgs, ... }: { }" in text
    assert "cut at" not in text

""".ci/nix-check: fails on a .nix file that does not parse, a poetry.lock poetry2nix cannot
read and a stale flake.lock.

Each case runs the real script in a throwaway git repository shaped like this one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from nixeval import REPO

SCRIPT = REPO / ".ci" / "nix-check"


def run_check(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT)], cwd=repo, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def repo(tmp_path: Path, nix_instantiate: str) -> Path:
    """A git repository holding this flake.nix, lib.nix, the lock guard and poetry.lock."""
    root = tmp_path / "repo"
    for path in [
        "flake.nix",
        "modules/lib.nix",
        "checks/poetry-lock.nix",
        "checks/wheel-names.nix",
        "pkgs/hyperhive/poetry-overrides.nix",
        "poetry.lock",
        "checks/flake-lock.nix",
        "flake.lock",
    ]:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, root / path)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "."], check=True)
    return root


def test_repository_passes(nix_instantiate: str) -> None:
    result = subprocess.run(
        [str(SCRIPT)], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "parsed" in result.stdout


def test_clean_copy_passes(repo: Path) -> None:
    result = run_check(repo)
    assert result.returncode == 0, result.stderr
    assert "parsed 6 .nix files" in result.stdout


def test_file_that_does_not_parse_fails(repo: Path) -> None:
    (repo / "modules" / "broken.nix").write_text("{ a = 1; b = undefinedThing; }\n")
    subprocess.run(["git", "-C", str(repo), "add", "modules/broken.nix"], check=True)
    result = run_check(repo)
    assert result.returncode == 1
    assert "modules/broken.nix does not parse" in result.stderr
    assert "undefinedThing" in result.stderr


def test_untracked_files_are_not_checked(repo: Path) -> None:
    (repo / "scratch.nix").write_text("{ this is not nix")
    assert run_check(repo).returncode == 0


def test_committed_flake_lock_passes(repo: Path) -> None:
    result = run_check(repo)
    assert result.returncode == 0, result.stderr
    assert "flake.lock fits flake.nix" in result.stdout


def test_stale_flake_lock_fails(repo: Path) -> None:
    lock = json.loads((repo / "flake.lock").read_text())
    lock["nodes"]["root"]["inputs"] = {"nixpkgs": "nixpkgs", "flake-utils": "flake-utils"}
    (repo / "flake.lock").write_text(json.dumps(lock))
    result = run_check(repo)
    assert result.returncode == 1
    assert "flake.lock is stale" in result.stderr
    assert "nix flake lock" in result.stderr


def test_missing_flake_lock_fails(repo: Path) -> None:
    subprocess.run(["git", "-C", str(repo), "rm", "-q", "--cached", "flake.lock"], check=True)
    (repo / "flake.lock").unlink()
    result = run_check(repo)
    assert result.returncode == 1
    assert "no flake.lock committed" in result.stderr


def test_lock_poetry2nix_cannot_read_fails(repo: Path) -> None:
    lock = (repo / "poetry.lock").read_text()
    wheel = "aiohappyeyeballs-2.7.1-py3-none-any.whl"
    assert wheel in lock
    bad = "aiohappyeyeballs-2.7.1-cp313-cp313-android_24_arm64_v8a.whl"
    (repo / "poetry.lock").write_text(lock.replace(wheel, bad))
    result = run_check(repo)
    assert result.returncode == 1
    assert f"{bad}: platform tag `android_24_arm64_v8a`: unknown platform tag" in result.stderr
    assert "shared/tools/poetry-lock" in result.stderr

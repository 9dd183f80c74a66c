"""flake.lock: committed, and its structure fits flake.nix (checks/flake-lock.nix).

The revisions and narHashes are public facts (docs/nixos.md, "flake.lock"); what can be
checked here is the structure, by our pure check and by Nix 2.8 itself, which reads the
lock offline without fetching anything (`nix flake metadata --no-update-lock-file`).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from nixeval import REPO, NixEval, nix_string

LOCK: dict[str, Any] = json.loads((REPO / "flake.lock").read_text())


def problems(nix_eval: NixEval, tmp_path: Path, lock: dict[str, Any]) -> list[str]:
    path = tmp_path / "flake.lock"
    path.write_text(json.dumps(lock))
    found: list[str] = nix_eval(
        f"(import ./checks/flake-lock.nix {{ lockFile = /. + {nix_string(str(path))}; }}).problems"
    )
    return found


def test_committed_lock_fits_flake_nix(nix_eval: NixEval, tmp_path: Path) -> None:
    assert problems(nix_eval, tmp_path, LOCK) == []


def test_pins_the_public_revisions() -> None:
    nodes = LOCK["nodes"]
    assert nodes["nixpkgs"]["locked"]["rev"] == "8fd9daa3db09ced9700431c5b7ad0e8ba199b575"
    assert nodes["nixpkgs"]["original"]["ref"] == "nixos-25.11"
    assert nodes["nixpkgs-unstable"]["locked"]["rev"] == "0182a361324364ae3f436a63005877674cf45efb"
    assert nodes["poetry2nix"]["locked"]["rev"] == "ce2369db77f45688172384bbeb962bc6c2ea6f94"
    # poetry2nix's nixpkgs is ours (flake.nix: inputs.nixpkgs.follows = "nixpkgs").
    assert nodes["poetry2nix"]["inputs"]["nixpkgs"] == ["nixpkgs"]


def broken(change: str) -> dict[str, Any]:
    lock = copy.deepcopy(LOCK)
    nodes = lock["nodes"]
    if change == "follows":
        nodes["poetry2nix"]["inputs"]["nixpkgs"] = "nixpkgs"
    elif change == "original":
        nodes["nixpkgs"]["original"]["ref"] = "nixos-25.05"
    elif change == "missing node":
        del nodes["flake-utils"]
    elif change == "dangling follows":
        nodes["treefmt-nix"]["inputs"]["nixpkgs"] = ["poetry2nix", "nope"]
    elif change == "path":
        nodes["poetry2nix"]["locked"] = {"type": "path", "path": "/tmp/p2n", "narHash": "x"}
    elif change == "no narHash":
        del nodes["nixpkgs"]["locked"]["narHash"]
    elif change == "stale":
        del lock["nodes"]["root"]["inputs"]["nixpkgs-unstable"]
    return lock


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ("follows", "poetry2nix.inputs.nixpkgs should follow nixpkgs"),
        ("original", "nixpkgs: flake.lock's original is not flake.nix's url"),
        ("missing node", "points at a missing node flake-utils"),
        ("dangling follows", "follows a path that does not resolve"),
        ("path", "poetry2nix is locked to a path input"),
        ("no narHash", "nixpkgs needs rev (40 hex), narHash"),
        ("stale", "flake.lock is stale"),
    ],
)
def test_a_lock_that_does_not_fit_fails(
    nix_eval: NixEval, tmp_path: Path, change: str, needle: str
) -> None:
    found = problems(nix_eval, tmp_path, broken(change))
    assert any(needle in p for p in found), found


@pytest.fixture
def nix() -> str:
    binary = shutil.which("nix")
    if binary is None:
        pytest.skip("nix (Debian nix-bin) is not installed")
    return binary


def test_nix_reads_the_lock_offline_without_changing_it(nix: str, tmp_path: Path) -> None:
    flake = tmp_path / "flake"
    flake.mkdir()
    shutil.copy(REPO / "flake.nix", flake / "flake.nix")
    shutil.copy(REPO / "flake.lock", flake / "flake.lock")
    result = subprocess.run(
        [
            nix,
            "--extra-experimental-features",
            "nix-command flakes",
            "--store",
            str(tmp_path / "store"),
            "--option",
            "substituters",
            "",
            "flake",
            "metadata",
            "--json",
            "--offline",
            "--no-update-lock-file",
            f"path:{flake}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    metadata = json.loads(result.stdout)
    assert metadata["locks"]["nodes"]["poetry2nix"]["locked"]["rev"] == (
        "ce2369db77f45688172384bbeb962bc6c2ea6f94"
    )
    assert (flake / "flake.lock").read_text() == (REPO / "flake.lock").read_text()

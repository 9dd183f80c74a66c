"""The unfree predicate admits claude-code and nothing else, everywhere it is used.

The overlay instantiates nixpkgs-unstable with it, and every container's nixpkgs gets it
from harness-base. Both must use the one definition in modules/lib.nix.
"""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

import pytest
from nixeval import REPO, NixEval, nix_string, tracked

LIB = "(import ./modules/lib.nix)"

ADMITTED = [
    '{ pname = "claude-code"; version = "2.1.330"; }',
    '{ name = "claude-code-2.1.330"; }',
    '"claude-code-2.1.330"',
]
REFUSED_NAMES = [
    "vscode",
    "slack",
    "nvidia-x11",
    "steam",
    "claude",
    "claude-code-router",
    "claude-code-acp",
    "my-claude-code",
    "cursor",
    "google-chrome",
]


def test_predicate_admits_claude_code(nix_eval: NixEval) -> None:
    got = nix_eval(f"map {LIB}.allowUnfreePredicate [ {' '.join(ADMITTED)} ]")
    assert got == [True, True, True]


@pytest.mark.parametrize("name", REFUSED_NAMES)
def test_predicate_refuses_other_unfree_packages(nix_eval: NixEval, name: str) -> None:
    as_pname = f'{{ pname = {nix_string(name)}; version = "1.0"; }}'
    as_name = f"{{ name = {nix_string(name + '-1.0')}; }}"
    got = nix_eval(f"map {LIB}.allowUnfreePredicate [ {as_pname} {as_name} ]")
    assert got == [False, False]


def test_allow_list_is_exactly_claude_code(nix_eval: NixEval) -> None:
    assert nix_eval(f"{LIB}.unfreeAllowList") == ["claude-code"]


def test_overlay_instantiates_unstable_with_the_scoped_predicate(
    nix_eval: NixEval, tmp_path: Path
) -> None:
    # A stand-in for nixpkgs-unstable that hands back the config it was called with, so
    # the test sees the predicate the overlay really passes.
    stub = tmp_path / "unstable.nix"
    stub.write_text(
        "{ system, config ? { } }:\n"
        "{ claude-code = { inherit system; allowed = config.allowUnfreePredicate; "
        "hasAllowUnfree = config ? allowUnfree; }; }\n"
    )
    expression = f"""
      let
        overlay = import ./overlays/claude-unstable.nix {{ nixpkgs-unstable = {stub}; }};
        result = overlay {{ }} {{ stdenv.hostPlatform.system = "aarch64-linux"; }};
        claude = result.claude-code;
      in {{
        names = builtins.attrNames result;
        inherit (claude) system hasAllowUnfree;
        verdicts = map claude.allowed [
          {{ pname = "claude-code"; }}
          {{ pname = "vscode"; }}
          {{ pname = "slack"; }}
        ];
      }}
    """
    got = nix_eval(expression)
    assert got == {
        "names": ["claude-code"],
        "system": "aarch64-linux",
        "hasAllowUnfree": False,
        "verdicts": [True, False, False],
    }


def test_harness_base_uses_the_shared_predicate() -> None:
    # harness-base needs nixpkgs' module system to evaluate, which is not available
    # here; check the one line that matters instead.
    text = (REPO / "modules" / "harness-base.nix").read_text()
    assert re.search(
        r"^\s*nixpkgs\.config\.allowUnfreePredicate = hlib\.allowUnfreePredicate;", text, re.M
    )
    assert "hlib = import ./lib.nix;" in text


def test_the_checks_read_tracked_files_only_never_the_run_state() -> None:
    """`./scripts/run` state in the checkout (an agent's config repo) is not the product."""
    planted = REPO / ".hyperhive" / f"test-{uuid.uuid4().hex}" / "agent.nix"
    planted.parent.mkdir(parents=True)
    try:
        planted.write_text("{ nixpkgs.config.allowUnfree = true; }\n")
        files = tracked("*.nix")
        assert planted not in files
        assert REPO / "modules" / "harness-base.nix" in files
    finally:
        shutil.rmtree(planted.parent)


def test_no_nix_file_allows_all_unfree() -> None:
    offenders = []
    for path in tracked("*.nix"):
        code = "\n".join(
            line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
        )
        if re.search(r"allowUnfree\s*=\s*true", code):
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []

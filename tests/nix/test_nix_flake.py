"""The flake's outputs have the shape SPEC §15 promises, checked without nixpkgs.

The real inputs cannot be fetched here, so flake.nix's `outputs` is called with stand-in
inputs; attribute names and everything that does not need nixpkgs evaluate for real.
`nix flake check` on a machine with Nix covers the rest (docs/nixos.md).
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

from nixeval import REPO, STUB_FLAKE, STUB_POETRY2NIX_NIX, NixEval

SYSTEMS = ["aarch64-linux", "x86_64-linux"]

# claude-agent-sdk: built from its sdist (its wheels bundle a claude executable), with the
# build system its sdist needs.
SDK_FROM_SDIST = {"preferWheel": False, "nativeBuildInputs": ["poetry-core", "hatchling"]}

OVERRIDDEN = ["claude-agent-sdk", "psycopg", "pywin32"]


def test_inputs_are_pinned_to_named_branches(nix_eval: NixEval) -> None:
    inputs = nix_eval("(import ./flake.nix).inputs")
    assert sorted(inputs) == ["nixpkgs", "nixpkgs-unstable", "poetry2nix"]
    assert inputs["nixpkgs"]["url"].startswith("github:NixOS/nixpkgs/nixos-2")
    assert inputs["nixpkgs-unstable"]["url"] == "github:NixOS/nixpkgs/nixos-unstable"
    assert inputs["poetry2nix"]["url"].startswith("github:nix-community/poetry2nix/")
    assert inputs["poetry2nix"]["inputs"]["nixpkgs"]["follows"] == "nixpkgs"


def test_top_level_outputs(nix_eval: NixEval) -> None:
    outputs = nix_eval(f"builtins.attrNames ({STUB_FLAKE})")
    for name in ["checks", "devShells", "lib", "nixosModules", "overlays", "packages"]:
        assert name in outputs
    assert "templates" in outputs


def test_modules_overlays_and_templates(nix_eval: NixEval) -> None:
    got = nix_eval(
        f"""let o = {STUB_FLAKE}; in {{
          modules = builtins.attrNames o.nixosModules;
          overlays = builtins.attrNames o.overlays;
          templates = builtins.attrNames o.templates;
        }}"""
    )
    assert got == {
        "modules": ["default", "harness-base", "hyperhive"],
        "overlays": ["claude-unstable", "default"],
        "templates": ["agent", "default"],
    }


def test_per_system_outputs(nix_eval: NixEval) -> None:
    got = nix_eval(
        f"""let o = {STUB_FLAKE}; in {{
          packages = builtins.mapAttrs (_: builtins.attrNames) o.packages;
          checks = builtins.mapAttrs (_: builtins.attrNames) o.checks;
          devShells = builtins.mapAttrs (_: builtins.attrNames) o.devShells;
        }}"""
    )
    for system in SYSTEMS:
        assert got["packages"][system] == ["default", "hive-forge", "hyperhive"]
        assert got["devShells"][system] == ["default"]
        checks = got["checks"][system]
        assert {"lifecycle", "pytest", "agent-template"} <= set(checks)
    assert sorted(got["packages"]) == SYSTEMS


def test_packages_build_both_binaries_from_the_one_project(nix_eval: NixEval) -> None:
    # With the stand-in callPackage, each package records which file builds it.
    got = nix_eval(
        f"""let p = ({STUB_FLAKE}).packages.x86_64-linux; in {{
          hyperhive = toString p.hyperhive.path;
          forge = toString p.hive-forge.path;
          forgeFrom = toString p.hive-forge.args.hyperhive.path;
        }}"""
    )
    assert Path(got["hyperhive"]) == REPO / "pkgs" / "hyperhive"
    assert Path(got["forge"]) == REPO / "pkgs" / "hive-forge"
    assert Path(got["forgeFrom"]) == REPO / "pkgs" / "hyperhive"


def test_flake_lib_exposes_the_port_hash(nix_eval: NixEval) -> None:
    from hyperhive.agents.names import agent_port

    assert nix_eval(f'({STUB_FLAKE}).lib.agentPort "alice"') == agent_port("alice")


def test_every_tracked_nix_file_parses(nix_instantiate: str) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--", "*.nix"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    paths = [REPO / name.decode() for name in files if name]
    assert len(paths) >= 10
    for path in paths:
        result = subprocess.run(
            [nix_instantiate, "--store", "dummy://", "--parse", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"{path}: {result.stderr}"


def test_pytest_check_and_dev_shell_get_main_and_dev_groups(nix_eval: NixEval) -> None:
    # The tests import aiohttp, pydantic, jinja2 and mcp (main group) and pytest (dev).
    env = nix_eval(
        f"""let e = ({STUB_FLAKE}).checks.x86_64-linux.pytest.args.devEnv; in {{
          inherit (e) groups preferWheels;
          nulled = e.overrides.extended;
        }}"""
    )
    assert sorted(env["groups"]) == ["dev", "main"]
    assert env["preferWheels"] is True
    assert sorted(env["nulled"]) == OVERRIDDEN
    assert env["nulled"]["pywin32"] is None
    assert env["nulled"]["claude-agent-sdk"] == SDK_FROM_SDIST
    assert "/nix/store/0-libpq/lib/libpq.so" in env["nulled"]["psycopg"]["postInstall"]


def test_package_prefers_wheels_and_nulls_what_linux_never_installs(nix_eval: NixEval) -> None:
    got = nix_eval(
        f"""let
          lib = {{
            fileset = {{ toSource = x: x; unions = x: x; }};
            licenses.mit = "mit";
            platforms.linux = [ ];
          }};
          app = import ./pkgs/hyperhive/default.nix {{
            inherit lib;
            pkgs = {{
              libpq = "/nix/store/0-libpq";
              stdenv.hostPlatform.extensions.sharedLibrary = ".so";
            }};
            python3 = "python3";
            poetry2nix = {STUB_POETRY2NIX_NIX};
          }};
        in {{ inherit (app) preferWheels checkGroups; nulled = app.overrides.extended; }}"""
    )
    assert got["preferWheels"] is True
    assert got["checkGroups"] == []
    assert sorted(got["nulled"]) == OVERRIDDEN
    assert got["nulled"]["pywin32"] is None
    assert got["nulled"]["claude-agent-sdk"] == SDK_FROM_SDIST
    assert got["nulled"]["psycopg"]["pythonImportsCheck"] == ["psycopg"]


PSYCOPG_OVERRIDE = f"""let
  p2n = ({STUB_POETRY2NIX_NIX}).lib.mkPoetry2Nix {{ pkgs = {{ }}; }};
  overrides = (import ./pkgs/hyperhive/poetry-overrides.nix).overrides {{
    inherit p2n;
    pkgs = {{
      libpq = "/nix/store/0-libpq";
      stdenv.hostPlatform.extensions.sharedLibrary = ".so";
    }};
  }};
in overrides.extended.psycopg"""


def substitutions(script: str) -> list[tuple[str, str, str]]:
    """(file, old, new) of every `substituteInPlace FILE --replace-fail 'OLD' 'NEW'`."""
    found = re.findall(r"substituteInPlace (\S+) \\\n\s*--replace-fail '([^']*)' '([^']*)'", script)
    return [(file, old, new) for file, old, new in found]


def test_psycopg_is_pointed_at_libpq_and_libc_from_the_store(nix_eval: NixEval) -> None:
    # psycopg finds libpq with ctypes.util.find_library, which knows no store path: under
    # Nix the import fails with "libpq library not found" unless the wheel is patched.
    got = nix_eval(PSYCOPG_OVERRIDE)
    script = got["postInstall"]
    assert script.startswith("# wheel installed\n")  # appended to what was there
    assert got["pythonImportsCheck"] == ["psycopg"]  # the build imports it: libpq loads
    assert substitutions(script) == [
        (
            "$out/lib/python3.11/site-packages/psycopg/pq/misc.py",
            'ctypes.util.find_library("pq")',
            '"/nix/store/0-libpq/lib/libpq.so"',
        ),
        (
            "$out/lib/python3.11/site-packages/psycopg/pq/_pq_ctypes.py",
            'ctypes.util.find_library("c")',
            '"/nix/store/0-glibc/lib/libc.so.6"',
        ),
    ]


def test_psycopg_substitutions_fit_the_locked_wheel(nix_eval: NixEval) -> None:
    # The dev venv holds the locked psycopg (pure Python: the wheel is the same files).
    # Apply the override's substitutions to copies, as substituteInPlace --replace-fail
    # would: each pattern must be there, and afterwards no look-up is left.
    import psycopg

    lock = tomllib.loads((REPO / "poetry.lock").read_text())
    locked = next(p["version"] for p in lock["package"] if p["name"] == "psycopg")
    assert psycopg.__version__ == locked, "the venv's psycopg is not the locked one"
    installed = Path(psycopg.__file__).parent
    seen = []
    for file, old, new in substitutions(nix_eval(PSYCOPG_OVERRIDE)["postInstall"]):
        relative = file.split("/site-packages/psycopg/", 1)[1]
        text = (installed / relative).read_text()
        assert text.count(old) == 1, f"{relative}: {old!r} not found once (--replace-fail)"
        patched = text.replace(old, new)
        assert old not in patched
        compile(patched, relative, "exec")  # still Python
        seen.append(relative)
    # libpq's look-up (misc.py) and libc's (_pq_ctypes.py, Linux only)
    assert seen == ["pq/misc.py", "pq/_pq_ctypes.py"]


def test_pytest_check_keeps_the_dependencies_on_pythonpath(tmp_path: Path) -> None:
    # The Python setup hooks put hyperhive's dependencies on PYTHONPATH; the check must
    # prepend the working tree, not replace them.
    script = (REPO / "checks" / "pytest.nix").read_text()
    line = next(x.strip() for x in script.splitlines() if "export PYTHONPATH" in x)
    line = line.replace("''${", "${")  # the Nix indented-string escape
    out = subprocess.run(
        ["bash", "-c", f"{line}; echo $PYTHONPATH"],
        cwd=tmp_path,
        env={"PYTHONPATH": "/nix/store/x-aiohttp/site-packages", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out.split(":") == [
        f"{tmp_path}/pkgs/hyperhive",
        f"{tmp_path}/pkgs/hive-forge",
        "/nix/store/x-aiohttp/site-packages",
    ]

"""checks/poetry-lock.nix: the lock guard, with the wheel names poetry2nix throws on.

poetry2nix (its vendored pyproject.nix) parses every wheel name of a package it builds
and throws on tags it does not know, so one such name fails every `nixos-rebuild` with
the module. These are the kinds of names a full PyPI lock held before
shared/tools/poetry-lock filtered it; tests/nix/real/lock-guard-agreement.nix checked
the guard against the real parser on 1711 such names (docs/nixos.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from nixeval import REPO, NixEval, nix_string


def guard(nix_eval: NixEval, lock: Path, absent: list[str] | None = None) -> list[str]:
    args = f"lockFile = /. + {nix_string(str(lock))};"
    if absent is not None:
        args += " absent = [ " + " ".join(nix_string(a) for a in absent) + " ];"
    problems: list[str] = nix_eval(f"(import ./checks/poetry-lock.nix {{ {args} }}).problems")
    return problems


def lock_with(tmp_path: Path, name: str, files: list[str]) -> Path:
    entries = ",\n".join(f'    {{file = "{f}", hash = "sha256:00"}}' for f in files)
    lock = tmp_path / "poetry.lock"
    lock.write_text(
        f'[[package]]\nname = "{name}"\nversion = "1.0"\noptional = false\n'
        f'python-versions = ">=3.9"\nfiles = [\n{entries}\n]\n\n'
        '[metadata]\nlock-version = "2.0"\npython-versions = "^3.11"\ncontent-hash = "0"\n'
    )
    return lock


def test_the_committed_lock_passes(nix_eval: NixEval) -> None:
    assert guard(nix_eval, REPO / "poetry.lock") == []


@pytest.mark.parametrize(
    ("wheel", "why"),
    [
        ("aiohttp-1.0-cp313-cp313-android_24_arm64_v8a.whl", "unknown platform tag"),
        ("markupsafe-1.0-cp313-cp313-ios_13_0_arm64_iphoneos.whl", "unknown platform tag"),
        (
            "yarl-1.0-cp313-cp313-manylinux_2_31_riscv64.manylinux_2_39_riscv64.whl",
            "manylinux tag for an arch poetry2nix does not know",
        ),
        ("yarl-1.0-cp313-cp313-musllinux_1_2_riscv64.whl", "musllinux tag"),
        ("cryptography-1.0-cp311-abi3.abi3t-manylinux_2_28_x86_64.whl", "abi tag `abi3.abi3t`"),
        (
            "pydantic_core-1.0-graalpy312-graalpy250_312_native-manylinux_2_17_x86_64.whl",
            "abi tag `graalpy250_312_native`",
        ),
        ("pkg-1.0-cp3.11-cp311-manylinux_2_17_x86_64.whl", "python tag"),
        ("pkg-1.0-cp311-manylinux_2_17_x86_64.whl", "not a wheel name"),
    ],
)
def test_wheel_names_poetry2nix_throws_on_fail(
    nix_eval: NixEval, tmp_path: Path, wheel: str, why: str
) -> None:
    lock = lock_with(tmp_path, "pkg", ["pkg-1.0.tar.gz", wheel])
    problems = guard(nix_eval, lock)
    assert len(problems) == 1, problems
    assert wheel in problems[0]
    assert why in problems[0]


@pytest.mark.parametrize(
    "wheel",
    [
        "pkg-1.0-py3-none-any.whl",
        "pkg-1.0-py2.py3-none-any.whl",
        "pkg-1.0-cp311-abi3-manylinux2014_aarch64.manylinux_2_17_aarch64.whl",
        "pkg-1.0-cp312-cp312-musllinux_1_2_x86_64.whl",
        "pkg-1.0-pp310-pypy310_pp73-manylinux_2_17_x86_64.whl",
        "pkg-1.0-1-cp313-cp313t-manylinux_2_28_x86_64.whl",
        "pkg-1.0-cp313-cp313-macosx_11_0_arm64.whl",
        "pkg-1.0-cp313-cp313-win_amd64.whl",
    ],
)
def test_names_poetry2nix_parses_pass(nix_eval: NixEval, tmp_path: Path, wheel: str) -> None:
    assert guard(nix_eval, lock_with(tmp_path, "pkg", ["pkg-1.0.tar.gz", wheel])) == []


@pytest.mark.parametrize(
    "files",
    [
        [],
        ["pkg-1.0-cp313-cp313-win_amd64.whl"],
        ["pkg-1.0-cp313-cp313-macosx_11_0_arm64.whl", "pkg-1.0-py2-none-any.whl"],
    ],
)
def test_package_without_a_linux_file_fails_unless_declared_absent(
    nix_eval: NixEval, tmp_path: Path, files: list[str]
) -> None:
    # pywin32 in our lock: mcp depends on it with a list of constraints, whose markers
    # poetry2nix ignores, so it tries to build it on Linux and throws.
    lock = lock_with(tmp_path, "pkg", files)
    problems = guard(nix_eval, lock, absent=[])
    assert len(problems) == 1
    assert "no file CPython on x86_64/aarch64 Linux can use" in problems[0]
    assert guard(nix_eval, lock, absent=["pkg"]) == []


def test_pywin32_is_declared_absent(nix_eval: NixEval) -> None:
    problems = guard(nix_eval, REPO / "poetry.lock", absent=[])
    assert [p.split(":")[0] for p in problems] == ["pywin32 312"]

"""Fixtures for the Nix checks: the repository root and a pure ``nix-instantiate --eval``.

nix-instantiate (Debian ``nix-bin``) is the one outside tool these tests need. Under CI
(``CI=true``) its absence is a failure, so a broken CI image cannot turn the Nix checks
green by skipping them; on a laptop without Nix the tests skip with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest
from nixeval import REPO, NixEval


@pytest.fixture(scope="session")
def nix_instantiate() -> str:
    """Absolute path of nix-instantiate; fails under CI, skips elsewhere, when missing."""
    found = shutil.which("nix-instantiate")
    if found is None:
        message = (
            "nix-instantiate not found: install Nix (Debian: apt-get install nix-bin) "
            "to run the Nix checks"
        )
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def nix_eval(nix_instantiate: str) -> NixEval:
    """Evaluate a Nix expression purely (dummy store, repo root as cwd) and decode its JSON."""

    def evaluate(expression: str) -> Any:
        result = subprocess.run(
            [
                nix_instantiate,
                "--store",
                "dummy://",
                "--eval",
                "--strict",
                "--json",
                "-E",
                expression,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"nix-instantiate failed on {expression!r}:\n{result.stderr}")
        return json.loads(result.stdout)

    return evaluate

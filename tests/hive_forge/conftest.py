"""Fixtures for hive-forge: a seeded Forgejo stand-in and an agent-like environment."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from forge_fixtures import REPO, TOKEN, Run, Seeded, seed
from forgejo_standin import ForgejoStandin, StandinServer
from hive_forge.cli import main


@pytest.fixture
def forge() -> Iterator[Seeded]:
    """A running stand-in seeded by `seed`."""
    standin = ForgejoStandin()
    repo, issue, pull = seed(standin)
    with StandinServer(standin) as server:
        yield Seeded(standin, server, repo, issue, pull)


@pytest.fixture
def agent_env(forge: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Environment as inside an agent container; returns the state dir holding the token."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "forge-token").write_text(TOKEN + "\n")
    monkeypatch.setenv("HYPERHIVE_STATE_DIR", str(state))
    monkeypatch.setenv("HIVE_FORGE_URL", forge.server.url)
    monkeypatch.setenv("HIVE_FORGE_REPO", REPO)
    return state


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Run `main(argv)` in-process; returns exit code, stdout and stderr."""

    def run(*argv: str) -> Run:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run

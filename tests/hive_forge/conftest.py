"""Fixtures for hive-forge: a seeded Forgejo stand-in and an agent-like environment."""

from __future__ import annotations

import threading
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
        # A thread of its own, because main()'s asyncio.run() ends with set_event_loop(None),
        # which would drop (and leak) the loop pytest-asyncio leaves installed on this thread
        # after an async test.
        codes: list[int] = []
        worker = threading.Thread(target=lambda: codes.append(main(list(argv))))
        worker.start()
        worker.join(timeout=60)
        assert not worker.is_alive(), f"hive-forge {' '.join(argv)} did not finish in 60 s"
        captured = capsys.readouterr()
        assert len(codes) == 1, f"hive-forge {' '.join(argv)} raised instead of returning"
        return Run(codes[0], captured.out, captured.err)

    return run

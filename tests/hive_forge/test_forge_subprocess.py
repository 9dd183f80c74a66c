"""hive-forge as agents run it: the installed console script and `python -m hive_forge`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from forge_fixtures import REPO, TOKEN, Seeded

CONSOLE_SCRIPT = Path(sys.executable).parent / "hive-forge"
BASH = shutil.which("bash")


def _env(forge: Seeded, state: Path) -> dict[str, str]:
    return {
        "PATH": f"{CONSOLE_SCRIPT.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(state),
        "LANG": "C.UTF-8",
        "HYPERHIVE_STATE_DIR": str(state),
        "HIVE_FORGE_URL": forge.server.url,
        "HIVE_FORGE_REPO": REPO,
    }


def _bash(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if BASH is None:
        pytest.fail("bash is required for the heredoc tests")
    return subprocess.run(
        [BASH, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_heredoc_body_round_trips_exactly(forge: Seeded, agent_env: Path) -> None:
    assert CONSOLE_SCRIPT.is_file(), "install the project into the venv (console scripts)"
    body = (
        "## Status\n"
        "\n"
        "- first line\n"
        "    indented code line\n"
        "\ttab-led line with trailing spaces   \n"
        "\n"
        "quotes ' \" and a backslash \\ and unicode — ✓ ünï\n"
        "\n"
    )
    script = f"hive-forge comment 42 --body-file - <<EOF\n{body}EOF\n"

    done = _bash(script, _env(forge, agent_env))

    assert done.returncode == 0, done.stderr
    posted = forge.issue.comments[-1]
    assert posted.body == body
    assert forge.standin.requests_to("POST")[0].body == {"body": body}
    assert (
        done.stdout
        == f"commented on #42: {forge.server.url}/{REPO}/issues/42#issuecomment-{posted.id}\n"
    )
    assert done.stderr == ""


def test_quoted_heredoc_keeps_shell_syntax_literal(forge: Seeded, agent_env: Path) -> None:
    body = "Run `make test` with $HOME and ${PATH} left as written.\nDone.\n"
    script = f"hive-forge comment 42 --body-file - <<'EOF'\n{body}EOF\n"

    done = _bash(script, _env(forge, agent_env))

    assert done.returncode == 0, done.stderr
    assert forge.issue.comments[-1].body == body


def test_python_dash_m_runs_the_same_cli(forge: Seeded, agent_env: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hive_forge", "labels", "42"],
        env=_env(forge, agent_env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (done.returncode, done.stdout, done.stderr) == (0, "#42 labels: bug\n", "")


def test_error_exit_status_and_stderr_of_the_real_process(forge: Seeded, agent_env: Path) -> None:
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "view", "4242"],
        env=_env(forge, agent_env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f"hive-forge: issue #4242 not found in {REPO}\n"
    assert TOKEN not in done.stderr


def test_hive_forge_does_not_import_hyperhive() -> None:
    # hive-forge ships alone in every container; hyperhive is not there.
    code = (
        "import sys, hive_forge.cli, hive_forge.client\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'hyperhive')\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr

"""The flags the SDK starts claude with, and outcome classification (the real CLI's --help)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from claude_agent_sdk._internal.transport.subprocess_cli import SubprocessCLITransport
from hyperhive.harness.claude import Outcome, classify
from hyperhive.harness.engine import TurnSpec, build_options
from hyperhive.wire.roles import Role

SPEC = TurnSpec(
    claude_bin="claude",
    model="haiku",
    settings_file=Path("/run/hive/claude-settings.json"),
    mcp_config_file=Path("/run/hive/claude-mcp-config.json"),
    system_prompt="You are alice.",
    allowed_tools=("Bash", "mcp__hyperhive__send"),
    cwd=Path("/state"),
    env={},
)


def sdk_argv(spec: TurnSpec) -> list[str]:
    """The command line the SDK builds for ``spec`` (its transport, not started)."""
    from hyperhive.harness.engine import hyperhive_server

    options = build_options(spec, hyperhive_server(Role.AGENT, Path("/run/hive/mcp.sock")))
    return SubprocessCLITransport(prompt="", options=options)._build_command()


def test_every_flag_exists_in_the_pinned_cli_help(claude_bin: Path) -> None:
    help_text = subprocess.run(
        [str(claude_bin), "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    known = set(re.findall(r"(--[a-zA-Z][\w-]*)", help_text))
    argv = sdk_argv(SPEC)
    used = {a.split("=")[0] for a in argv if a.startswith("--")}
    assert used <= known, used - known
    assert "--dangerously-skip-permissions" not in argv
    assert argv[0] == "claude"  # our CLI, never the SDK's bundled one


def test_the_sdk_command_has_the_flags_spec_7_names() -> None:
    argv = sdk_argv(SPEC)
    assert argv[argv.index("--allowedTools") + 1] == "Bash,mcp__hyperhive__send"
    assert argv[argv.index("--tools") + 1] == "Bash,Edit,Glob,Grep,Read,Write"
    assert argv[argv.index("--append-system-prompt") + 1] == "You are alice."
    assert argv[argv.index("--settings") + 1] == "/run/hive/claude-settings.json"
    assert argv[argv.index("--model") + 1] == "haiku"
    assert "--strict-mcp-config" in argv
    assert "--continue" in argv
    assert "--continue" not in sdk_argv(TurnSpec(**{**SPEC.__dict__, "resume": False}))


def result(**fields: object) -> dict[str, object]:
    return {"type": "result", "subtype": "success", "is_error": False, "result": "", **fields}


@pytest.mark.parametrize(
    ("final", "errors", "code", "expected"),
    [
        (result(result="done"), [], 0, Outcome.OK),
        (result(is_error=True, api_error_status=429), ["rate_limit"], 1, Outcome.RATE_LIMITED),
        (result(is_error=True, api_error_status=401), [], 1, Outcome.NEEDS_LOGIN),
        (
            result(is_error=True, result="Not logged in · Please run /login"),
            ["authentication_failed"],
            1,
            Outcome.NEEDS_LOGIN,
        ),
        (
            result(is_error=True, terminal_reason="prompt_too_long", api_error_status=400),
            ["invalid_request"],
            1,
            Outcome.PROMPT_TOO_LONG,
        ),
        (result(is_error=True, result="API Error: 500"), [], 1, Outcome.TRANSIENT),
        (
            result(is_error=True, api_error_status=529, api_error_type="overloaded_error"),
            [],
            1,
            Outcome.TRANSIENT,
        ),
        (
            result(is_error=True, api_error_status=400, result="Credit balance is too low"),
            [],
            1,
            Outcome.FAILED,
        ),
        (None, [], 137, Outcome.TRANSIENT),
        # is_error decides: the text of a successful reply is the model's, not an error.
        (result(result="Prompt is too long, the user said"), [], 0, Outcome.OK),
        (result(result="done"), [], -15, Outcome.OK),
    ],
)
def test_classify(
    final: dict[str, object] | None, errors: list[str], code: int, expected: Outcome
) -> None:
    assert classify(final, errors, code, cancelled=False)[0] is expected


def test_cancel_wins_over_what_the_result_says() -> None:
    final = result(is_error=True, subtype="error_during_execution")
    assert classify(final, [], 0, cancelled=True)[0] is Outcome.CANCELLED


def test_failure_without_result_says_so() -> None:
    assert "without a result line" in classify(None, [], 1, cancelled=False)[1]

"""The real claude CLI against the API stand-in: proves the stand-in speaks claude's format."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from standin.api import ApiError, Kind, StandIn, Text, ToolCall, claude_env, tool_results

ADDER = Path(__file__).with_name("adder_mcp.py")


def run_claude(
    claude_bin: Path, env: dict[str, str], cwd: Path, prompt: str, *flags: str
) -> tuple[int, list[dict[str, Any]]]:
    cwd.mkdir(parents=True, exist_ok=True)
    argv = [str(claude_bin), "--print", "--verbose", "--output-format", "stream-json"]
    argv += ["--model", "haiku", *flags]
    done = subprocess.run(
        argv, input=prompt, capture_output=True, text=True, env=env, cwd=cwd, timeout=90
    )
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines() if line]


def test_plain_text_turn(claude_bin: Path, standin: StandIn, tmp_path: Path) -> None:
    key = f"sk-test-{uuid.uuid4().hex}"
    standin.script(key, Text("hello from the stand-in"))
    rc, events = run_claude(claude_bin, claude_env(standin, tmp_path / "h", key), tmp_path, "hi")
    assert rc == 0
    result = events[-1]
    assert result["type"] == "result"
    assert result["is_error"] is False
    assert result["result"] == "hello from the stand-in"
    (main,) = standin.received(key)
    assert "hi" in json.dumps(main.body["messages"])


def test_claude_calls_mcp_tool_through_tool_search(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    key = f"sk-test-{uuid.uuid4().hex}"
    log = tmp_path / "adder.log"
    config = {
        "mcpServers": {
            "adder": {
                "command": sys.executable,
                "args": [str(ADDER)],
                "env": {"ADDER_LOG": str(log)},
            }
        }
    }
    standin.script(key, ToolCall("mcp__adder__add", {"a": 2, "b": 40}), Text("it is 42"))
    rc, events = run_claude(
        claude_bin,
        claude_env(standin, tmp_path / "h", key),
        tmp_path,
        "add 2 and 40",
        "--mcp-config",
        json.dumps(config),
        "--strict-mcp-config",
        "--allowedTools",
        "mcp__adder__add",
    )
    assert rc == 0, events
    assert log.read_text() == "2+40\n"
    assert events[-1]["result"] == "it is 42"
    mains = standin.received(key)
    # Claude 2.1.330 defers MCP tools: ToolSearch, then the tool, then the final text.
    assert len(mains) == 3
    assert "tool_reference" in tool_results(mains[1].body)[0]
    assert "42" in tool_results(mains[2].body)[-1]


def test_rate_limit_is_reported_not_retried(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    key = f"sk-test-{uuid.uuid4().hex}"
    standin.script(key, ApiError.rate_limited())
    rc, events = run_claude(claude_bin, claude_env(standin, tmp_path / "h", key), tmp_path, "hi")
    assert rc == 1
    assert events[-2]["error"] == "rate_limit"
    assert events[-1]["api_error_status"] == 429
    assert len(standin.received(key)) == 1


def test_compact_runs_headless_on_a_continued_session(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    key = f"sk-test-{uuid.uuid4().hex}"
    env = claude_env(standin, tmp_path / "h", key)
    standin.script(key, Text("first"))
    assert run_claude(claude_bin, env, tmp_path / "w", "one")[0] == 0
    rc, events = run_claude(claude_bin, env, tmp_path / "w", "/compact", "--continue")
    assert rc == 0
    assert any(e.get("subtype") == "compact_boundary" for e in events)
    assert events[-1]["local_command"] == "compact"
    assert len(standin.received(key, Kind.COMPACT)) >= 1
    assert standin.pending(key) == 0

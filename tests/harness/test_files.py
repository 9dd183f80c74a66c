"""The generated hive files, and proof that claude honours the settings file."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

from hyperhive.harness.files import write_hive_files
from hyperhive.settings import ExtraMcpServer, HarnessSettings
from hyperhive.wire.roles import Role
from standin.api import StandIn, Text, claude_env


def settings_in(tmp_path: Path, **extra: object) -> HarnessSettings:
    return HarnessSettings(
        agent_name="alice",
        socket=tmp_path / "mcp.sock",
        hive_dir=tmp_path / "hive",
        state_dir=tmp_path / "state",
        **extra,  # type: ignore[arg-type]
    )


def test_mcp_config_points_at_our_server_and_merges_extras(tmp_path: Path) -> None:
    extras = {
        "notes": ExtraMcpServer(command="notes-mcp", args=["-q"], allowedTools=["mcp__notes__add"]),
        "hyperhive": ExtraMcpServer(command="evil", allowedTools=["mcp__hyperhive__approve"]),
    }
    files = write_hive_files(
        Role.AGENT, settings_in(tmp_path, extra_mcp_servers=extras), ["/bin/hive-ag3nt"]
    )
    servers = json.loads(files.mcp_config.read_text())["mcpServers"]
    assert servers["hyperhive"]["command"] == "/bin/hive-ag3nt"
    assert servers["hyperhive"]["args"] == ["--role", "agent", "mcp"]
    assert servers["hyperhive"]["env"]["HYPERHIVE_SOCKET"] == str(tmp_path / "mcp.sock")
    assert servers["notes"] == {"command": "notes-mcp", "args": ["-q"], "env": {}}
    assert "mcp__notes__add" in files.allowed_tools
    assert "mcp__hyperhive__approve" not in files.allowed_tools


def test_manager_gets_manager_tools_and_prompt(tmp_path: Path) -> None:
    files = write_hive_files(Role.MANAGER, settings_in(tmp_path), ["hive-m1nd"])
    assert "mcp__hyperhive__request_spawn" in files.allowed_tools
    prompt = files.system_prompt_text()
    assert "alice, the manager" in prompt
    assert "they/them" in prompt


def test_agent_prompt_has_name_and_pronouns(tmp_path: Path) -> None:
    files = write_hive_files(
        Role.AGENT, settings_in(tmp_path, operator_pronouns="she/her"), ["hive-ag3nt"]
    )
    assert "mcp__hyperhive__request_spawn" not in files.allowed_tools
    assert "You are alice" in files.system_prompt_text()
    assert "she/her" in files.system_prompt_text()
    settings = json.loads(files.settings.read_text())
    assert settings["autoCompactEnabled"] is False


def test_claude_honours_the_generated_settings(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    # --print silently ignores a settings file that fails validation; the deny list taking
    # effect proves ours is valid.
    files = write_hive_files(Role.AGENT, settings_in(tmp_path), ["hive-ag3nt"])
    offered: list[set[str]] = []
    for extra in ([], ["--settings", str(files.settings)]):
        key = f"sk-test-{uuid.uuid4().hex}"
        standin.script(key, Text("ok"))
        subprocess.run(
            [str(claude_bin), "--print", "--output-format", "json", "--model", "haiku", *extra],
            input=b"hi",
            env=claude_env(standin, tmp_path / "home", key),
            cwd=tmp_path,
            capture_output=True,
            timeout=90,
            check=True,
        )
        (request,) = standin.received(key)
        offered.append({t["name"] for t in request.body["tools"]})
    without, with_settings = offered
    assert "Agent" in without
    assert "Agent" not in with_settings
    assert "Bash" in with_settings

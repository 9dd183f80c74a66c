"""The three files the harness writes into the hive dir on boot (SPEC §7)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from hyperhive.mcp_server.roles import (
    BUILTIN_TOOLS,
    DENIED_TOOLS,
    MCP_SERVER_NAME,
    mcp_tools,
    qualified,
)
from hyperhive.settings import HarnessSettings
from hyperhive.wire.roles import Role

MCP_CONFIG = "claude-mcp-config.json"
SETTINGS = "claude-settings.json"
SYSTEM_PROMPT = "claude-system-prompt.md"

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("hyperhive", "templates"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # noqa: S701 - markdown for claude, not HTML
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class HiveFiles:
    """Paths of the generated files plus what the turn argv needs from them."""

    mcp_config: Path
    settings: Path
    system_prompt: Path
    allowed_tools: tuple[str, ...]

    def system_prompt_text(self) -> str:
        """The rendered system prompt (passed as text: 2.1.330 has no *-file flag)."""
        return self.system_prompt.read_text()


def allowed_tools(role: Role, settings: HarnessSettings) -> tuple[str, ...]:
    """Built-ins, our MCP tools for the role, and the extra servers' declared tools."""
    extra = [
        tool
        for key, server in sorted(settings.extra_mcp_servers.items())
        if key != MCP_SERVER_NAME
        for tool in server.allowedTools
    ]
    return (*BUILTIN_TOOLS, *(qualified(t) for t in mcp_tools(role)), *extra)


def render_system_prompt(
    role: Role,
    name: str,
    pronouns: str,
    agents_dir: Path = Path("/agents"),
    applied_dir: Path = Path("/applied"),
) -> str:
    """The role's system prompt template rendered for this agent."""
    template = _templates.get_template(f"{role.value}-system-prompt.md.j2")
    return template.render(
        name=name,
        pronouns=pronouns,
        role=role.value,
        agents_dir=str(agents_dir),
        applied_dir=str(applied_dir),
    )


def mcp_config(role: Role, settings: HarnessSettings, mcp_command: Sequence[str]) -> dict[str, Any]:
    """claude's --mcp-config: our stdio server first, then the extra servers."""
    servers: dict[str, Any] = {
        key: {"command": s.command, "args": s.args, "env": s.env}
        for key, s in settings.extra_mcp_servers.items()
        if key != MCP_SERVER_NAME  # nobody may replace the broker's server
    }
    servers[MCP_SERVER_NAME] = {
        "command": mcp_command[0],
        "args": [*mcp_command[1:], "--role", role.value, "mcp"],
        "env": {
            "HYPERHIVE_AGENT_NAME": settings.agent_name,
            "HYPERHIVE_SOCKET": str(settings.socket),
        },
    }
    return {"mcpServers": servers}


def claude_settings(tools: Sequence[str]) -> dict[str, Any]:
    """claude's --settings. Only keys 2.1.330 validates: with --print an invalid settings
    file is silently ignored, so a typo here would drop every rule below."""
    return {
        # hyperhive owns compaction (one /compact on "prompt is too long").
        "autoCompactEnabled": False,
        "env": {"DISABLE_AUTO_COMPACT": "1", "DISABLE_AUTOUPDATER": "1"},
        "includeCoAuthoredBy": False,
        "permissions": {"allow": list(tools), "deny": list(DENIED_TOOLS)},
    }


def write_hive_files(
    role: Role, settings: HarnessSettings, mcp_command: Sequence[str]
) -> HiveFiles:
    """(Re)write the three files into ``settings.hive_dir``; return their paths."""
    hive = settings.hive_dir
    hive.mkdir(parents=True, exist_ok=True)
    tools = allowed_tools(role, settings)
    files = HiveFiles(hive / MCP_CONFIG, hive / SETTINGS, hive / SYSTEM_PROMPT, tools)
    _write(files.mcp_config, json.dumps(mcp_config(role, settings, mcp_command), indent=2))
    _write(files.settings, json.dumps(claude_settings(tools), indent=2))
    _write(
        files.system_prompt,
        render_system_prompt(
            role,
            settings.agent_name,
            settings.operator_pronouns,
            settings.agents_dir,
            settings.applied_dir,
        ),
    )
    return files


def _write(path: Path, text: str) -> None:
    # Atomic: a claude starting during a harness restart never reads half a file.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)

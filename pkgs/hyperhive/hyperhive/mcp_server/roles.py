"""The tool lists each role gets (SPEC §6, §7)."""

from __future__ import annotations

from hyperhive.wire import requests as rq
from hyperhive.wire.roles import Role, SocketKind

MCP_SERVER_NAME = "hyperhive"

AGENT_TOOLS = ("send", "recv", "ask_operator", "whoami")
# The manager's tools: an agent's, plus every command its socket answers beyond an agent's.
MANAGER_TOOLS = (
    *AGENT_TOOLS,
    *(
        rq.cmd_of(model)
        for model in rq.MODELS
        if SocketKind.MANAGER in model.answered_on and SocketKind.AGENT not in model.answered_on
    ),
)

# Built-ins claude may use. Web tools, sub-agent spawning and claude's own cross-session
# messaging are left out on purpose: the broker is the one message system.
BUILTIN_TOOLS = ("Bash", "Edit", "Glob", "Grep", "Read", "Write")

# Built-ins denied in the settings file as well, in case a future claude adds them to the
# --tools set under another spelling.
DENIED_TOOLS = ("WebFetch", "WebSearch", "Agent", "Task", "SendMessage", "ListAgents")


def mcp_tools(role: Role) -> tuple[str, ...]:
    """The hyperhive MCP tool names (unprefixed) a role gets."""
    return MANAGER_TOOLS if role is Role.MANAGER else AGENT_TOOLS


def qualified(tool: str) -> str:
    """The name claude sees for one of our MCP tools."""
    return f"mcp__{MCP_SERVER_NAME}__{tool}"

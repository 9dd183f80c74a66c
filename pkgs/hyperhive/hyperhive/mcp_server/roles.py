"""The tool lists each role gets (SPEC §6, §7)."""

from __future__ import annotations

from hyperhive.wire.roles import Role

MCP_SERVER_NAME = "hyperhive"

AGENT_TOOLS = ("send", "recv", "ask_operator", "whoami")
MANAGER_TOOLS = (
    *AGENT_TOOLS,
    "request_spawn",
    "kill",
    "start",
    "restart",
    "update",
    "request_apply_commit",
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

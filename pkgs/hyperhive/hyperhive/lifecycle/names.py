"""Agent names and the ports that follow from them (SPEC §3).

Architecture Invariant: every agent name from outside (socket, dashboard, CLI) passes
`validate_name` before it is joined into a path or handed to a subprocess.
"""

from __future__ import annotations

import re
from typing import NewType

from hyperhive.errors import InvalidName

AgentName = NewType("AgentName", str)

NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,8}")
MANAGER = AgentName("manager")
OPERATOR = "operator"
SYSTEM = "system"
BROADCAST = "*"
# Senders and recipients with a fixed meaning; no agent may take these names.
RESERVED = frozenset({MANAGER, OPERATOR, SYSTEM})

MANAGER_PORT = 8000
AGENT_PORT_BASE = 8100
AGENT_PORT_SPAN = 900


def validate_name(name: object) -> AgentName:
    """Return `name` as an AgentName, or raise InvalidName saying what the rule is."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        shown = repr(name)[:40]
        raise InvalidName(
            f"invalid agent name {shown}: use 1-9 characters, a lowercase letter first,"
            " then lowercase letters, digits or '-'"
        )
    if name in RESERVED:
        raise InvalidName(f"agent name {name!r} is reserved; choose another")
    return AgentName(name)


def container_name(name: AgentName) -> str:
    """The nixos-container name of an agent (at most 11 characters)."""
    return "hm1nd" if name == MANAGER else f"h-{name}"


def fnv1a32(data: bytes) -> int:
    """32-bit FNV-1a."""
    h = 2166136261
    for byte in data:
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h


def agent_port(name: str) -> int:
    """The web UI port of an agent: manager 8000, others 8100 + fnv1a32(name) % 900."""
    if name == MANAGER:
        return MANAGER_PORT
    return AGENT_PORT_BASE + fnv1a32(name.encode()) % AGENT_PORT_SPAN

"""Agent names and the ports that follow from them (SPEC §3).

Architecture Invariant: every agent name from outside (socket, dashboard, CLI) passes
`validate_name` before it is joined into a path or handed to a subprocess.
"""

from __future__ import annotations

import re
from typing import NewType

from hyperhive.errors import InvalidName

# Re-exported for the daemon side; ports.py is their home (the harness imports it too).
from hyperhive.ports import MANAGER_PORT as MANAGER_PORT
from hyperhive.ports import agent_port as agent_port
from hyperhive.ports import fnv1a32 as fnv1a32

AgentName = NewType("AgentName", str)

# The intersection of every rule a name meets downstream (docs/lifecycle.md, "Names"):
# systemd's machine and host names (letters, digits, '-'; no '-' at either end of a
# label), nixos-container's (no '_', at most 11 characters with the "h-" prefix, since
# the host-side interface "ve-h-<name>" must fit 15), DNS's reserved "??--" labels (no
# "--" at all, the simple form of that rule), and our own paths and ports (lowercase, no
# '/' or '.'). Each '-' sits between two letters or digits. modules/lib.nix's
# isValidAgentName and the dashboard's spawn form use the same pattern and bound.
NAME_RE = re.compile(r"[a-z](?:-?[a-z0-9]){0,8}")
NAME_MAX = 9
MANAGER = AgentName("manager")
OPERATOR = "operator"
SYSTEM = "system"
BROADCAST = "*"
# Senders and recipients with a fixed meaning; no agent may take these names.
RESERVED = frozenset({MANAGER, OPERATOR, SYSTEM})


def validate_name(name: object) -> AgentName:
    """Return `name` as an AgentName, or raise InvalidName saying what the rule is."""
    if not isinstance(name, str) or len(name) > NAME_MAX or not NAME_RE.fullmatch(name):
        shown = repr(name[:40] if isinstance(name, str) else name)[:60]
        raise InvalidName(
            f"invalid agent name {shown}: use 1-9 characters, a lowercase letter first,"
            " then lowercase letters, digits or single '-' between them (not at the end)"
        )
    if name in RESERVED:
        raise InvalidName(f"agent name {name!r} is reserved; choose another")
    return AgentName(name)


def container_name(name: AgentName) -> str:
    """The nixos-container name of an agent (at most 11 characters)."""
    return "hm1nd" if name == MANAGER else f"h-{name}"

"""Web UI ports follow from agent names (SPEC §3): no probing, no state file.

A neutral module: the daemon (lifecycle) and the harness (web UI) both import it.
"""

from __future__ import annotations

MANAGER_NAME = "manager"
MANAGER_PORT = 8000
AGENT_PORT_BASE = 8100
AGENT_PORT_SPAN = 900


def fnv1a32(data: bytes) -> int:
    """32-bit FNV-1a (offset 2166136261, prime 16777619)."""
    h = 2166136261
    for byte in data:
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h


def agent_port(name: str) -> int:
    """The web UI port of an agent: manager 8000, others 8100 + fnv1a32(name) % 900."""
    if name == MANAGER_NAME:
        return MANAGER_PORT
    return AGENT_PORT_BASE + fnv1a32(name.encode()) % AGENT_PORT_SPAN

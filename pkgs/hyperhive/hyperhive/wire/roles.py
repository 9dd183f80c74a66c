"""Who is on the other end of a socket: an agent's role and a socket's kind.

Both sides of the container boundary name these the same way: the daemon stores an agent's
role and serves one socket kind per identity; the harness runs as one role.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """An agent's authority: a sub-agent (hive-ag3nt) or the manager (hive-m1nd)."""

    AGENT = "agent"
    MANAGER = "manager"


class SocketKind(StrEnum):
    """Which authority a socket carries: the operator's host.sock, or an agent's by role."""

    HOST = "host"
    MANAGER = "manager"
    AGENT = "agent"

"""Rewriting nixos-container's per-container conf file (SPEC §10, docs/gotchas.md).

``nixos-container create`` writes a shell-style ``KEY=value`` file that the
``container@.service`` start script reads as an EnvironmentFile. It has no ``--bind``:
bind mounts go into ``EXTRA_NSPAWN_FLAGS``, expanded unquoted into the systemd-nspawn
command line. ``create`` also writes HOST_ADDRESS/LOCAL_ADDRESS, which would put the
container in a private network namespace and hide its web UI from the host.

``create`` writes no PRIVATE_USERS, so the container's root would be host root (and
uid 0, a trusted user, on the host's nix-daemon socket). The rewrite sets
``PRIVATE_USERS=pick`` (the start script then passes ``--private-users=pick`` and binds
/nix idmapped) and makes our own binds idmapped (``:idmap``) so the harness, the daemon
and the manager keep seeing host-root-owned files as their root's (docs/security.md,
"User namespaces").

Only the variables below are touched; every other line is kept as it was.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# Variables that make the start script create a veth/bridge (a private network).
NETWORK_VARIABLES = (
    "HOST_ADDRESS",
    "LOCAL_ADDRESS",
    "HOST_ADDRESS6",
    "LOCAL_ADDRESS6",
    "HOST_BRIDGE",
    "LOCAL_MAC_ADDRESS",
)

# The user namespace of every agent container: nspawn picks a free 64K uid range.
PRIVATE_USERS = "pick"
# The container shares the host's network namespace, so the host's resolver config is the
# right one. Recent nixpkgs copies /etc/resolv.conf into a container only when its conf
# says COPY_RESOLV_CONF=1; neither `nixos-container create` nor the module writes it for
# imperative containers. Older start scripts copy unconditionally and ignore the variable.
COPY_RESOLV_CONF = "COPY_RESOLV_CONF=1"

_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=")


@dataclass(frozen=True)
class Bind:
    """One bind mount: host path -> container path."""

    host: str
    container: str
    read_only: bool = False

    def flag(self, *, idmap: bool = False) -> str:
        """The systemd-nspawn flag (``--bind=host:container`` or ``--bind-ro=...``).

        `idmap`: an idmapped mount (``:idmap``, systemd >= 250): in a user-namespaced
        container the container's root sees the host's root-owned files as its own and
        the files it creates are owned by host root (docs/security.md, "User namespaces").
        """
        for path in (self.host, self.container):
            # The start script splits EXTRA_NSPAWN_FLAGS on whitespace; nspawn splits on ':'.
            if not path.startswith("/") or re.search(r"[\s:\"'$`\\]", path):
                raise ValueError(f"bind path {path!r} cannot go into EXTRA_NSPAWN_FLAGS")
        options = ":idmap" if idmap else ""
        return f"--bind{'-ro' if self.read_only else ''}={self.host}:{self.container}{options}"


def extra_nspawn_flags(binds: Sequence[Bind]) -> str:
    """The EXTRA_NSPAWN_FLAGS line for `binds`, each idmapped (the container has a userns)."""
    return 'EXTRA_NSPAWN_FLAGS="' + " ".join(b.flag(idmap=True) for b in binds) + '"'


def rewrite(text: str, binds: Sequence[Bind]) -> str:
    """The conf `text` with our binds, the network variables cleared, PRIVATE_NETWORK=0
    and PRIVATE_USERS=pick.

    Idempotent: rewriting a rewritten file gives the same bytes.
    """
    out: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        match = _ASSIGNMENT.match(line)
        key = match.group(1) if match else None
        if key in NETWORK_VARIABLES:
            out.append(f"{key}=")
        elif key == "PRIVATE_NETWORK":
            out.append("PRIVATE_NETWORK=0")
        elif key == "PRIVATE_USERS":
            if key not in seen:  # one line: a later one would win in the EnvironmentFile
                out.append(f"PRIVATE_USERS={PRIVATE_USERS}")
        elif key == "COPY_RESOLV_CONF":
            out.append(COPY_RESOLV_CONF)
        elif key == "EXTRA_NSPAWN_FLAGS":
            if key not in seen:
                out.append(extra_nspawn_flags(binds))
        else:
            out.append(line)
        if key is not None:
            seen.add(key)
    if "PRIVATE_NETWORK" not in seen:
        out.append("PRIVATE_NETWORK=0")
    if "PRIVATE_USERS" not in seen:
        out.append(f"PRIVATE_USERS={PRIVATE_USERS}")
    if "COPY_RESOLV_CONF" not in seen:
        out.append(COPY_RESOLV_CONF)
    if "EXTRA_NSPAWN_FLAGS" not in seen:
        out.append(extra_nspawn_flags(binds))
    return "\n".join(out) + "\n"


def parse(text: str) -> dict[str, str]:
    """The conf's variables (quotes removed), for checks and tests."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _ASSIGNMENT.match(line)
        if match:
            value = line[match.end() :].strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            values[match.group(1)] = value
    return values


def dropin(memory_max: str, cpu_quota: str) -> str | None:
    """The systemd drop-in for ``container@<c>.service``, or None without limits."""
    lines = [
        f"MemoryMax={memory_max}" if memory_max else "",
        f"CPUQuota={cpu_quota}" if cpu_quota else "",
    ]
    body = [line for line in lines if line]
    if not body:
        return None
    return (
        "# Written by hive-c0re (services.hyperhive.agentMemoryMax/agentCpuQuota)\n[Service]\n"
        + "\n".join(body)
        + "\n"
    )

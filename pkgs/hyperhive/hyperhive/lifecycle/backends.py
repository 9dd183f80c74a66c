"""Container backends behind one interface (SPEC §10), and what they share.

- ``nixos``: nixos-container plus the conf rewriting (production, `nixos.py`).
- ``nspawn``: plain systemd-nspawn over the host's /usr, supervised here (`nspawn.py`).
- ``local``: no isolation, each harness a child process (`local.py`).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Protocol

from hyperhive import logtail, safefs
from hyperhive.agents.names import MANAGER
from hyperhive.agents.paths import AgentPaths
from hyperhive.errors import HyperhiveError
from hyperhive.lifecycle.conf import Bind
from hyperhive.lifecycle.repos import (
    AGENT_NIX,
    AgentConfig,
    UnsafeFile,
    load_agent_nix,
    parse_agent_nix,
)

logger = logging.getLogger(__name__)

JOURNAL_MAX_LINES = 5000
# Lines of build output kept in a failed/<id> tag and the approval's note.
TAIL_LINES = 40
# Bounds on what an agent's files put into a build error (characters) and an agent.nix read.
TAIL_CHARS = 4000
AGENT_NIX_MAX_BYTES = 256 * 1024


class BuildFailed(HyperhiveError):
    """Building an agent's system failed; `tail` is the end of the build output."""

    status = 409

    def __init__(self, message: str, tail: str) -> None:
        super().__init__(message)
        self.tail = tail


class Backend(Protocol):
    """What the lifecycle service needs from a way of running agents.

    Every method takes the paths of a validated name. ``stop`` and ``start`` are
    idempotent; ``build`` may take minutes (nixos) and raises BuildFailed.
    """

    name: str

    async def build(self, paths: AgentPaths) -> AgentConfig:
        """Build the agent from its applied repo (creating the container on first use)."""
        ...

    async def start(self, paths: AgentPaths) -> None:
        """Start the agent's container (or process)."""
        ...

    async def stop(self, paths: AgentPaths) -> None:
        """Stop it."""
        ...

    async def remove(self, paths: AgentPaths) -> None:
        """Stop it and remove the container itself (not the agent's trees)."""
        ...

    async def is_running(self, paths: AgentPaths) -> bool:
        """Whether it runs now."""
        ...

    async def adopt(self, paths: AgentPaths) -> bool:
        """At daemon start: take over what a previous daemon left running; True if it runs."""
        ...

    async def journal(self, paths: AgentPaths, lines: int) -> list[str]:
        """The last `lines` log lines of the agent's harness."""
        ...

    async def close(self) -> None:
        """Daemon shutdown: stop what this backend supervises itself."""
        ...


def tail_file(path: Path, lines: int) -> list[str]:
    """The last `lines` (clamped to 1..JOURNAL_MAX_LINES) lines of a log file.

    Not following a link, each line without control characters and capped in length.
    """
    return logtail.tail_file(path, max(1, min(lines, JOURNAL_MAX_LINES)))


def verify_binds(paths: AgentPaths, binds: list[Bind]) -> None:
    """Before a container starts: each bind source under the hive's trees is a real directory.

    Missing ones are created (nspawn refuses a missing source); a symlink, a non-directory
    or a directory the daemon's uid does not own anywhere below the state or run dir is
    refused (UnsafePath) and nothing is mounted.
    """
    for bind in binds:
        host = Path(bind.host)
        try:
            root = paths.root_of(host)
        except safefs.UnsafePath:
            continue  # a host path of the daemon's own choosing, outside any agent tree
        safefs.ensure_dir(root, host)
        safefs.verify_dir(root, host)


async def build_from_repo(paths: AgentPaths) -> AgentConfig:
    """The local and nspawn "build": check the applied agent.nix, read what we need from it.

    There is no Nix system to build without Nix, but a syntax error is still refused
    with nix-instantiate's own message when `nix-instantiate` is on PATH. The file is
    manager-authored: it is read without following a symlink and bounded, and handed to
    nix-instantiate on stdin, so no error can quote a host file.
    """
    if paths.name == MANAGER:
        return AgentConfig()
    # The applied repo is a checkout of the manager's commits: agent.nix may be a symlink
    # (git stores links), which must not make the daemon read a host file.
    try:
        source = load_agent_nix(paths.applied)
    except UnsafeFile as exc:
        raise BuildFailed(f"{paths.name}: {AGENT_NIX} is refused", exc.message) from exc
    if source is None:
        raise BuildFailed(
            f"{paths.name}: the applied repo has no {AGENT_NIX}",
            f"{AGENT_NIX} is missing: commit an agent.nix to the proposed repo",
        )
    checker = shutil.which("nix-instantiate")
    if checker is not None:
        # The text we read, on stdin (`-`): nix never opens the path itself.
        proc = await asyncio.create_subprocess_exec(
            checker, "--store", "dummy://", "--parse", "-",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await proc.communicate(source)
        if proc.returncode != 0:
            raise BuildFailed(f"{paths.name}: {AGENT_NIX} does not parse", build_tail(err))
    return parse_agent_nix(source.decode(errors="replace"))


def build_tail(output: bytes | str) -> str:
    """The end of a build's output, fit for an approval note and the manager's event.

    The last TAIL_LINES lines, at most TAIL_CHARS characters, control characters replaced.
    """
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    tail = "\n".join(text.rstrip().splitlines()[-TAIL_LINES:])
    return safefs.bounded(tail, TAIL_CHARS)

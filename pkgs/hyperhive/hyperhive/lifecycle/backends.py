"""Container backends behind one interface (SPEC §10), and what they share.

- ``nixos``: nixos-container plus the conf rewriting (production, `nixos.py`).
- ``nspawn``: plain systemd-nspawn over the host's /usr, supervised here (`nspawn.py`).
- ``local``: no isolation, each harness a child process (`local.py`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from hyperhive import logtail, safefs
from hyperhive.agents.names import MANAGER, agent_port
from hyperhive.agents.paths import AgentPaths
from hyperhive.errors import HyperhiveError
from hyperhive.lifecycle.conf import Bind
from hyperhive.lifecycle.repos import (
    AGENT_NIX,
    AgentConfig,
    UnsafeFile,
    load_agent_nix,
    parse_agent_nix,
    read_agent_nix,
)
from hyperhive.settings import Settings

logger = logging.getLogger(__name__)

# Taken from the daemon's own environment into every harness when set: how tests and
# API-key users run. Their values are never logged.
PASS_THROUGH = (
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_KEY",
    "DISABLE_AUTOUPDATER",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
    "HYPERHIVE_CLAUDE_BIN",
    "HIVE_DEFAULT_MODEL",
    "HYPERHIVE_RATE_LIMIT_SLEEP",
    "HYPERHIVE_LOGIN_CMD",
)

# Inside a container (SPEC §3).
HIVE_DIR = "/run/hive"
STATE_DIR = "/state"
CLAUDE_DIR = "/root/.claude"
AGENTS_DIR = "/agents"
APPLIED_DIR = "/applied"

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


def passed_through(source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The PASS_THROUGH variables set in `source` (default: this process's environment)."""
    env = os.environ if source is None else source
    return {key: env[key] for key in PASS_THROUGH if env.get(key)}


def claude_binary(env: Mapping[str, str]) -> str:
    """The claude CLI the harness should run: HYPERHIVE_CLAUDE_BIN or claude on PATH."""
    configured = env.get("HYPERHIVE_CLAUDE_BIN") or "claude"
    found = shutil.which(configured, path=env.get("PATH"))
    return found or configured


def harness_environment(
    settings: Settings, paths: AgentPaths, *, inside: bool, source: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The harness's environment contract (docs/turn-loop.md, HarnessSettings).

    `inside` = the harness runs in a container with the SPEC §3 layout; otherwise the
    host paths are used directly (local backend).
    """
    base = os.environ if source is None else source
    config = AgentConfig()
    if paths.name != MANAGER and safefs.is_regular_file(paths.state_dir, paths.applied / AGENT_NIX):
        config = read_agent_nix(paths.applied / AGENT_NIX)
    if inside:
        hive, state, home = Path(HIVE_DIR), Path(STATE_DIR), Path("/root")
    else:
        hive, state, home = paths.socket_dir, paths.state, paths.root / "home"
    env: dict[str, str] = {
        "PATH": base.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": base.get("LANG", "C.UTF-8"),
        "HYPERHIVE_AGENT_NAME": paths.name,
        "HYPERHIVE_SOCKET": str(hive / "mcp.sock"),
        "HYPERHIVE_HIVE_DIR": str(hive),
        "HYPERHIVE_STATE_DIR": str(state),
        "HYPERHIVE_EVENTS_DB": str(state / "hyperhive-events.sqlite"),
        "HYPERHIVE_MODEL_FILE": str(state / "hyperhive-model"),
        "HYPERHIVE_WORK_DIR": str(state),
        "HYPERHIVE_OPERATOR_PRONOUNS": settings.operator_pronouns,
        "HYPERHIVE_EXTRA_MCP_SERVERS": "{}",
        "HYPERHIVE_WEB_HOST": "127.0.0.1",
        "HYPERHIVE_WEB_PORT": str(agent_port(paths.name)),
        "PYTHONUNBUFFERED": "1",
    }
    if paths.name == MANAGER:
        # Where the manager finds the proposed repos and the deployed ones: the proposed
        # tree, never agents/ (no agent's claude/ or state/).
        if inside:
            env["HYPERHIVE_AGENTS_DIR"], env["HYPERHIVE_APPLIED_DIR"] = AGENTS_DIR, APPLIED_DIR
        else:
            env["HYPERHIVE_AGENTS_DIR"] = str(paths.config.parent)
            env["HYPERHIVE_APPLIED_DIR"] = str(paths.applied.parent)
    env.update(passed_through(base))
    if config.model:
        env["HIVE_DEFAULT_MODEL"] = config.model
    env["HYPERHIVE_CLAUDE_BIN"] = claude_binary(base)
    if not inside:
        env["CLAUDE_CONFIG_DIR"] = str(paths.claude)
        safefs.ensure_dir(paths.state_dir, home)
    return env


def harness_argv(python: str, paths: AgentPaths) -> list[str]:
    """How a harness is started: this interpreter, the harness module, the role."""
    role = "manager" if paths.name == MANAGER else "agent"
    return [python, "-m", "hyperhive.cli.harness", "--role", role, "serve"]


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

"""What a backend starts a harness with: its environment contract and its command line."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from hyperhive import safefs
from hyperhive.agents.names import MANAGER, agent_port
from hyperhive.agents.paths import AgentPaths
from hyperhive.lifecycle.mounts import AGENTS_DIR, APPLIED_DIR, HIVE_DIR, STATE_DIR
from hyperhive.lifecycle.repos import AGENT_NIX, AgentConfig, read_agent_nix
from hyperhive.settings import Settings

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

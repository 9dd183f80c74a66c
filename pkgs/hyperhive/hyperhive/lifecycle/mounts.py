"""The container layout (SPEC §3) and its binds, shared by the nspawn and nixos backends."""

from __future__ import annotations

from hyperhive.agents.names import MANAGER
from hyperhive.agents.paths import AgentPaths
from hyperhive.lifecycle.conf import Bind
from hyperhive.settings import Settings

# Inside a container (SPEC §3).
HIVE_DIR = "/run/hive"
STATE_DIR = "/state"
CLAUDE_DIR = "/root/.claude"
AGENTS_DIR = "/agents"
APPLIED_DIR = "/applied"


def binds_for(settings: Settings, paths: AgentPaths) -> list[Bind]:
    """The SPEC §3 bind layout of an agent's container (shared by the nspawn and nixos backends)."""
    binds = [
        Bind(str(paths.socket_dir), HIVE_DIR),
        Bind(str(paths.claude), CLAUDE_DIR),
        Bind(str(paths.state), STATE_DIR),
    ]
    if paths.name == MANAGER:
        # The proposed repos only (their own tree, never agents/: no claude/, no state/),
        # and what is deployed, read-only.
        binds.append(Bind(str(settings.state_dir / "proposed"), AGENTS_DIR))
        binds.append(Bind(str(settings.state_dir / "applied"), APPLIED_DIR, read_only=True))
    return binds

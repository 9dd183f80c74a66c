"""Where an agent's files live on the host (SPEC §3). Built only from validated names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hyperhive.lifecycle.names import MANAGER, AgentName
from hyperhive.settings import Settings


@dataclass(frozen=True)
class AgentPaths:
    """The host paths of one agent."""

    name: AgentName
    root: Path
    applied: Path
    socket_dir: Path

    @classmethod
    def of(cls, settings: Settings, name: AgentName) -> AgentPaths:
        """Paths for `name` (which must come from validate_name or be MANAGER)."""
        if name == MANAGER:
            socket_dir = settings.run_dir / "manager"
        else:
            socket_dir = settings.run_dir / "agents" / name
        return cls(
            name=name,
            root=settings.state_dir / "agents" / name,
            applied=settings.state_dir / "applied" / name,
            socket_dir=socket_dir,
        )

    @property
    def config(self) -> Path:
        """The proposed config repo (the manager edits it): ``<state>/proposed/<name>``.

        Its own tree, outside ``agents/<name>``: the manager's ``/agents`` bind is
        ``<state>/proposed`` and reaches no agent's claude/ or state/.
        """
        return self.applied.parent.parent / "proposed" / self.name

    @property
    def claude(self) -> Path:
        """Claude credentials, mounted at /root/.claude."""
        return self.root / "claude"

    @property
    def state(self) -> Path:
        """Durable notes and the events db, mounted at /state."""
        return self.root / "state"

    @property
    def socket(self) -> Path:
        """The agent's broker socket, mounted at /run/hive/mcp.sock."""
        return self.socket_dir / "mcp.sock"

    @property
    def events_db(self) -> Path:
        """The harness's event store."""
        return self.state / "hyperhive-events.sqlite"

    def create(self) -> None:
        """Create the durable directories (idempotent)."""
        # Not the proposed repo: only a spawn creates it (repos.seed), and never adopts one.
        for directory in (self.claude, self.state, self.socket_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.claude.chmod(0o700)

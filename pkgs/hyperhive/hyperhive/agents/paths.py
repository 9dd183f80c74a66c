"""Where an agent's files live on the host (SPEC §3). Built only from validated names.

Two kinds of tree: the agent's own (``agents/<name>/{claude,state,config}`` and its socket
dir, writable from containers: every file operation there goes through `safefs`), and
the daemon's own per-agent directory ``<state_dir>/host/<name>/`` (0700, never bound into
a container) with its harness log and pidfiles.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from hyperhive import safefs
from hyperhive.agents.names import MANAGER, AgentName
from hyperhive.settings import Settings

logger = logging.getLogger(__name__)


# Pidfiles that earlier versions kept in agents/<name>/, a tree agents can write.
LEGACY_PIDFILES = ("harness.pid", "nspawn.pid")
# Under the state dir: the daemon's own files per agent (never bound into a container).
HOST_DIR = "host"


@dataclass(frozen=True)
class AgentPaths:
    """The host paths of one agent."""

    name: AgentName
    root: Path
    applied: Path
    socket_dir: Path
    # The trusted roots (operator-configured, no container can write them).
    state_dir: Path
    run_dir: Path

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
            state_dir=settings.state_dir,
            run_dir=settings.run_dir,
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

    @property
    def host(self) -> Path:
        """The daemon's own directory for this agent (0700; no container sees it)."""
        return self.state_dir / HOST_DIR / self.name

    @property
    def harness_log(self) -> Path:
        """The harness's (or the nspawn container's) output; the dashboard's log viewer."""
        return self.host / "harness.log"

    @property
    def socket_staging(self) -> Path:
        """Daemon-only (0700) dir where sockets are bound and chmodded before their rename."""
        return self.run_dir / HOST_DIR

    def pidfile(self, kind: str) -> Path:
        """The pidfile of a supervised process (``harness`` or ``nspawn``)."""
        return self.host / f"{kind}.pid"

    def root_of(self, path: Path) -> Path:
        """The trusted root (state or run dir) that `path` lies under."""
        # The deeper root first, should one contain the other.
        roots = sorted((self.state_dir, self.run_dir), key=lambda r: len(r.parts), reverse=True)
        for root in roots:
            if path == root or root in path.parents:
                return root
        raise safefs.UnsafePath(f"{path} is outside the hive's state and run directories")

    def create(self) -> None:
        """Create the durable directories (idempotent), refusing links anywhere in them.

        The agent's trees are created or checked without following links (a symlinked
        ``claude/`` is refused, never chmodded through); claude/ and the daemon's own
        directory are made 0700 with fchmod.
        """
        safefs.ensure_dir(self.state_dir, self.state_dir / HOST_DIR, mode=0o700)
        safefs.ensure_dir(self.state_dir, self.host, mode=0o700)
        # Not the proposed repo: only a spawn creates it (repos.seed), and never adopts one.
        for directory in (self.state, self.socket_dir):
            safefs.ensure_dir(self.root_of(directory), directory)
        safefs.ensure_dir(self.state_dir, self.claude, mode=0o700)

    def verify_bind_source(self, path: Path) -> None:
        """Refuse (UnsafePath) a bind source that is not a real directory the daemon made."""
        safefs.verify_dir(self.root_of(path), path)

    def forget_legacy_files(self) -> None:
        """Remove pidfiles older versions kept in the agent's own tree, never reading them.

        An agent (or the manager) could have pointed them anywhere; unlinking removes the
        entry itself (a link, not its target). Processes they named are not adopted.
        """
        for legacy in LEGACY_PIDFILES:
            try:
                if safefs.unlink(self.state_dir, self.root / legacy):
                    logger.warning(
                        "%s: ignored and removed %s from the agent's tree (pidfiles now live"
                        " in %s)", self.name, legacy, self.host,
                    )  # fmt: skip
            except (OSError, safefs.UnsafePath):
                pass

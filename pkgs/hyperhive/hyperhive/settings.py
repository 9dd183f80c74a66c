"""The one configuration class: every knob is a ``HYPERHIVE_*`` environment variable."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BackendKind(StrEnum):
    """How agents are isolated (SPEC §10)."""

    NIXOS = "nixos"
    NSPAWN = "nspawn"
    LOCAL = "local"


class Settings(BaseSettings):
    """Host daemon configuration, read from ``HYPERHIVE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="HYPERHIVE_", extra="ignore")

    state_dir: Path = Field(
        Path("/var/lib/hyperhive"),
        description="Durable state: broker.sqlite, agents/<name>/{config,claude,state}, applied/.",
    )
    run_dir: Path = Field(
        Path("/run/hyperhive"),
        description="Sockets: host.sock, manager/mcp.sock, agents/<name>/mcp.sock.",
    )
    backend: BackendKind = Field(
        BackendKind.NIXOS,
        description="Container backend: nixos (production), nspawn, or local (no isolation).",
    )
    dashboard_port: int = Field(7000, ge=1, le=65535, description="Dashboard TCP port.")
    dashboard_host: str = Field(
        "127.0.0.1",
        description="Dashboard bind address; anything but loopback is an explicit choice.",
    )
    git: str = Field(
        "git",
        description="Absolute path of the git binary (the service PATH is not the operator's).",
    )
    operator_pronouns: str = Field(
        "they/them", description="How agents refer to the operator in their system prompt."
    )
    retention_days: int = Field(
        30, ge=1, description="Acked broker messages older than this are deleted hourly."
    )
    events_keep_days: int = Field(
        7, ge=1, description="Agent event rows older than this are deleted by events_vacuum."
    )
    events_keep_rows: int = Field(
        2000, ge=1, description="events_vacuum keeps at most this many newest rows per agent."
    )
    agent_template_dir: Path = Field(
        Path(__file__).resolve().parents[3] / "templates" / "agent",
        description="Files a new agent's proposed repo is seeded with (the flake's templates/agent).",
    )
    flake_ref: str = Field(
        "",
        description="Flake reference of hyperhive itself, passed to each agent's generated flake.",
    )
    agent_memory_max: str = Field(
        "", description="systemd MemoryMax for every agent container (empty = no limit)."
    )
    agent_cpu_quota: str = Field(
        "", description="systemd CPUQuota for every agent container (empty = no limit)."
    )
    sweep_interval_seconds: float = Field(
        3600.0, gt=0, description="How often retention and events_vacuum run."
    )

    @property
    def broker_db(self) -> Path:
        """The broker's sqlite file."""
        return self.state_dir / "broker.sqlite"

    @property
    def host_socket(self) -> Path:
        """The root-only admin socket."""
        return self.run_dir / "host.sock"

"""The one configuration class: every knob is a ``HYPERHIVE_*`` environment variable."""

from __future__ import annotations

import re
import socket
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class BackendKind(StrEnum):
    """How agents are isolated (SPEC §10)."""

    NIXOS = "nixos"
    NSPAWN = "nspawn"
    LOCAL = "local"


HOST_NAME_RE = re.compile(r"[a-z](?:-?[a-z0-9]){0,30}")
"""A host's name in the hive: lower-case letters, digits, single dashes, 1-31 characters."""


def default_host_name() -> str:
    """This machine's short host name, lowercased, if it follows HOST_NAME_RE; else `host`."""
    name = socket.gethostname().split(".")[0].lower()
    return name if HOST_NAME_RE.fullmatch(name) else "host"


class Settings(BaseSettings):
    """Host daemon configuration, read from ``HYPERHIVE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="HYPERHIVE_", extra="ignore")

    state_dir: Path = Field(
        Path("/var/lib/hyperhive"),
        description="Durable state: broker.sqlite, agents/<name>/{claude,state}, proposed/,"
        " applied/.",
    )
    run_dir: Path = Field(
        Path("/run/hyperhive"),
        description="Sockets: host.sock, manager/mcp.sock, agents/<name>/mcp.sock.",
    )
    backend: BackendKind = Field(
        BackendKind.NIXOS,
        description="Container backend: nixos (production), nspawn, or local (no isolation).",
    )
    dashboard_port: int = Field(
        7000, ge=0, le=65535, description="Dashboard TCP port (0 picks a free port)."
    )
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
    events_vacuum_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Time budget of events_vacuum for one agent's events db (a hostile or"
        " huge file is skipped after it; docs/security.md).",
    )
    agent_template_dir: Path = Field(
        Path(__file__).resolve().parents[3] / "templates" / "agent",
        description="Files a new agent's proposed repo is seeded with (templates/agent).",
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
    crash_watch_seconds: float = Field(
        10.0,
        gt=0,
        description="How often crash_watch compares containers with the agent table.",
    )
    stop_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="How long a stopping harness or nspawn container gets before SIGKILL.",
    )
    max_connections_per_socket: int = Field(
        64,
        ge=1,
        description="Open connections one socket (one identity: an agent, the manager, the"
        " operator's host.sock) may hold; a connection over it gets one err line and is closed.",
    )
    send_rate_per_second: float = Field(
        100.0,
        gt=0,
        description="Sustained sends per second per agent sender (token bucket refill); the"
        " operator and system messages are not limited.",
    )
    send_burst: int = Field(
        1000, ge=1, description="Sends an agent may make at once before the rate applies."
    )
    max_unacked_bytes_per_sender: int = Field(
        64 * 1024 * 1024,
        ge=256 * 1024,
        description="Bytes of message bodies a sender may have stored that no recipient has"
        " acked yet (the operator's unread inbox included); further sends are refused.",
    )
    max_open_questions_per_agent: int = Field(
        20, ge=1, description="Unanswered ask_operator questions one agent may have at once."
    )
    dashboard_page_size: int = Field(
        50,
        ge=1,
        le=1000,
        description="Items per dashboard section (questions, approvals, kept state); the"
        ' rest is counted ("showing 50 of 2,000"), never sent.',
    )
    harness: bool = Field(
        False,
        description="Start each agent's harness process on the local backend (scripts/run"
        " sets it); off, the local backend only opens the agents' sockets. nspawn and nixos"
        " always run harnesses.",
    )

    database_url: str | None = Field(
        None,
        description="PostgreSQL connection URL (postgresql://user@host:port/dbname, no"
        " password) of a hive shared by several hosts; unset: the embedded sqlite file"
        " <state_dir>/broker.sqlite (one host). See docs/scaling.md.",
    )
    database_password_file: Path | None = Field(
        None,
        description="File holding the PostgreSQL password (root-only, read once at start,"
        " never logged).",
    )
    host_name: str = Field(
        default_factory=default_host_name,
        description="This host's name in the hive, shown beside each agent it runs"
        " (default: the short host name).",
    )

    @field_validator("host_name")
    @classmethod
    def _host_name_rule(cls, value: str) -> str:
        if not HOST_NAME_RE.fullmatch(value):
            raise ValueError(
                f"HYPERHIVE_HOST_NAME {value[:40]!r} is not a host name here: lower-case"
                " letters, digits and single dashes, starting with a letter, 1-31 characters"
            )
        return value

    @property
    def broker_db(self) -> Path:
        """The broker's sqlite file."""
        return self.state_dir / "broker.sqlite"

    @property
    def host_socket(self) -> Path:
        """The root-only admin socket."""
        return self.run_dir / "host.sock"


class ExtraMcpServer(BaseModel):
    """One extra MCP server for an agent (``hyperhive.extraMcpServers.<key>``)."""

    command: str = Field(description="Executable of the stdio MCP server.")
    args: list[str] = Field(default_factory=list, description="Its arguments.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment.")
    allowedTools: list[str] = Field(  # the Nix option's spelling
        default_factory=list,
        description="Tool names claude may call without asking, e.g. mcp__<key>__<tool>.",
    )


class HarnessSettings(BaseSettings):
    """Agent harness configuration (hive-ag3nt / hive-m1nd), read from its environment.

    The NixOS modules and the daemon's local backend set exactly these variables.
    """

    model_config = SettingsConfigDict(env_prefix="HYPERHIVE_", extra="ignore")

    agent_name: str = Field(
        "manager", description="This agent's name (HYPERHIVE_AGENT_NAME); the manager's is manager."
    )
    socket: Path = Field(
        Path("/run/hive/mcp.sock"), description="This agent's broker socket (HYPERHIVE_SOCKET)."
    )
    hive_dir: Path = Field(
        Path("/run/hive"),
        description="Where the generated claude MCP config, settings and system prompt go.",
    )
    state_dir: Path = Field(
        Path("/state"), description="Durable notes, the events db and the model file."
    )
    events_db: Path | None = Field(
        None, description="Event store; default <state_dir>/hyperhive-events.sqlite."
    )
    model_file: Path | None = Field(
        None, description="Runtime model override; default <state_dir>/hyperhive-model."
    )
    default_model: str = Field(
        "haiku",
        validation_alias="HIVE_DEFAULT_MODEL",
        description="Model when the model file is absent (HIVE_DEFAULT_MODEL, no prefix).",
    )
    operator_pronouns: str = Field(
        "they/them", description="How the system prompt refers to the operator."
    )
    login_cmd: str = Field(
        "claude auth login", description="Command the web UI runs to log claude in."
    )
    claude_bin: str = Field("claude", description="The claude CLI to run each turn.")
    rate_limit_sleep: float = Field(
        300.0,
        ge=0,
        description="Seconds to wait after a rate-limited turn when the API named no reset.",
    )
    retry_attempts: int = Field(
        5, ge=0, le=100, description="Retries of a message after transient failures (5xx, 529)."
    )
    retry_base_seconds: float = Field(
        2.0, ge=0, description="First backoff before retrying a transient failure; doubles."
    )
    retry_max_seconds: float = Field(
        120.0, ge=0, description="Cap of one backoff (jitter takes it down to half)."
    )
    result_grace_seconds: float = Field(
        5.0, ge=0, description="How long claude may run after its result before it is ended."
    )
    turn_timeout_seconds: float = Field(
        3600.0, gt=0, description="A turn with no result by then is ended and reported failed."
    )
    extra_mcp_servers: dict[str, ExtraMcpServer] = Field(
        default_factory=dict,
        description="JSON object {key: {command, args, env, allowedTools}}; key hyperhive ignored.",
    )
    work_dir: Path | None = Field(
        None, description="claude's working directory; default state_dir."
    )
    agents_dir: Path = Field(
        Path("/agents"),
        description="Manager only: the proposed config repos, one per agent (<dir>/<name>).",
    )
    applied_dir: Path = Field(
        Path("/applied"), description="Manager only: the deployed (applied) repos, read-only."
    )
    web_host: str = Field("127.0.0.1", description="Per-agent web UI bind address.")
    web_port: int = Field(0, ge=0, le=65535, description="Per-agent web UI port (0: from name).")
    web_key_file: Path | None = Field(
        None,
        description="This page's operator key, written by the daemon; default <hive_dir>/web-key.",
    )

    @property
    def events_path(self) -> Path:
        """The events db actually used."""
        return self.events_db or self.state_dir / "hyperhive-events.sqlite"

    @property
    def web_key_path(self) -> Path:
        """The web UI key file actually used."""
        return self.web_key_file or self.hive_dir / "web-key"

    @property
    def model_path(self) -> Path:
        """The model file actually used."""
        return self.model_file or self.state_dir / "hyperhive-model"

    @property
    def cwd(self) -> Path:
        """claude's working directory (its --continue session is per directory)."""
        return self.work_dir or self.state_dir

"""SQL for the agents table: who exists, in which role and state."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from enum import StrEnum

from hyperhive.wire.roles import Role


class AgentState(StrEnum):
    """Stored lifecycle state; transient states are shown while a verb runs."""

    SPAWNING = "spawning"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    RESTARTING = "restarting"
    REBUILDING = "rebuilding"
    DESTROYING = "destroying"
    FAILED = "failed"
    DESTROYED = "destroyed"


@dataclass
class AgentRecord:
    """One row of the agents table."""

    name: str
    role: Role
    state: AgentState
    created_at: int
    destroyed_at: int | None = None
    allowed_recipients: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        """The record as plain JSON types."""
        return {
            "name": self.name,
            "role": self.role.value,
            "state": self.state.value,
            "created_at": self.created_at,
            "destroyed_at": self.destroyed_at,
            "allowed_recipients": list(self.allowed_recipients),
        }

    @property
    def live(self) -> bool:
        """Registered and not destroyed: it has a socket and can receive."""
        return self.state is not AgentState.DESTROYED


def _record(row: sqlite3.Row) -> AgentRecord:
    return AgentRecord(
        name=row["name"],
        role=Role(row["role"]),
        state=AgentState(row["state"]),
        created_at=row["created_at"],
        destroyed_at=row["destroyed_at"],
        allowed_recipients=json.loads(row["allowed_recipients"]),
    )


def list_agents(conn: sqlite3.Connection) -> list[AgentRecord]:
    """Every agent row, tombstones included, by name."""
    return [_record(r) for r in conn.execute("SELECT * FROM agents ORDER BY name")]


def upsert_agent(conn: sqlite3.Connection, record: AgentRecord) -> None:
    """Insert or replace one agent row."""
    conn.execute(
        "INSERT INTO agents (name, role, state, created_at, destroyed_at, allowed_recipients)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET role = excluded.role,"
        " state = excluded.state, created_at = excluded.created_at,"
        " destroyed_at = excluded.destroyed_at,"
        " allowed_recipients = excluded.allowed_recipients",
        (
            record.name,
            record.role.value,
            record.state.value,
            record.created_at,
            record.destroyed_at,
            json.dumps(record.allowed_recipients),
        ),
    )


def delete_agent(conn: sqlite3.Connection, name: str) -> None:
    """Forget an agent entirely (purge)."""
    conn.execute("DELETE FROM agents WHERE name = ?", (name,))

"""SQL for the agents table: who exists, in which role and state."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hyperhive.db.connection import AGENTS, Tx
from hyperhive.errors import Conflict
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
    host: str = ""
    """The host whose daemon runs it (its containers, repos and socket live there)."""

    def as_json(self) -> dict[str, object]:
        """The record as plain JSON types."""
        return {
            "name": self.name,
            "role": self.role.value,
            "state": self.state.value,
            "created_at": self.created_at,
            "destroyed_at": self.destroyed_at,
            "allowed_recipients": list(self.allowed_recipients),
            "host": self.host,
        }

    @property
    def live(self) -> bool:
        """Registered and not destroyed: it has a socket and can receive."""
        return self.state is not AgentState.DESTROYED


def _record(row: Any) -> AgentRecord:
    return AgentRecord(
        name=row["name"],
        role=Role(row["role"]),
        state=AgentState(row["state"]),
        created_at=row["created_at"],
        destroyed_at=row["destroyed_at"],
        allowed_recipients=json.loads(row["allowed_recipients"]),
        host=row["host"],
    )


def list_agents(conn: Tx) -> list[AgentRecord]:
    """Every agent row, tombstones included, by name."""
    return [_record(r) for r in conn.execute("SELECT * FROM agents ORDER BY name")]


_COLUMNS = "(name, role, state, created_at, destroyed_at, allowed_recipients, host)"
_UPDATE = (
    "role = excluded.role, state = excluded.state, created_at = excluded.created_at,"
    " destroyed_at = excluded.destroyed_at,"
    " allowed_recipients = excluded.allowed_recipients, host = excluded.host"
)


def _values(record: AgentRecord) -> tuple[object, ...]:
    return (
        record.name,
        record.role.value,
        record.state.value,
        record.created_at,
        record.destroyed_at,
        json.dumps(record.allowed_recipients),
        record.host,
    )


def _refused(conn: Tx, record: AgentRecord) -> Conflict:
    held = find_agent(conn, record.name)
    where = "" if held is None or held.host == record.host else f" on host {held.host!r}"
    state = "" if held is None else f" ({held.state})"
    return Conflict(f"agent {record.name!r} already exists{where}{state}")


def _write(conn: Tx, record: AgentRecord, guard: str) -> None:
    """Insert `record`, or update the row of its name where `guard` holds; Conflict if
    the row exists and `guard` does not hold."""
    row = conn.execute(
        f"INSERT INTO agents {_COLUMNS} VALUES (?, ?, ?, ?, ?, ?, ?)"  # noqa: S608 - constants
        f" ON CONFLICT (name) DO UPDATE SET {_UPDATE} WHERE {guard} RETURNING name",
        _values(record),
    ).fetchone()
    if row is None:
        raise _refused(conn, record)
    conn.notify(AGENTS, record.name)


def upsert_agent(conn: Tx, record: AgentRecord) -> None:
    """Insert or replace one agent row. A row another host holds is never replaced (a
    cache that missed a change must not move an agent): Conflict."""
    _write(conn, record, "agents.host = excluded.host")


def spawn_agent(conn: Tx, record: AgentRecord) -> None:
    """The row of a spawn: a new name, or this host's own tombstone (a revive). Decided by
    the database, not by a cache: two hosts (or two requests) spawning one name at once
    cannot both win; the loser gets Conflict."""
    _write(conn, record, "agents.host = excluded.host AND agents.state = 'destroyed'")


def delete_agent(conn: Tx, name: str) -> None:
    """Forget an agent entirely (purge)."""
    conn.execute("DELETE FROM agents WHERE name = ?", (name,))
    conn.notify(AGENTS, name)


def find_agent(conn: Tx, name: str) -> AgentRecord | None:
    """One agent row, or None."""
    row = conn.execute("SELECT * FROM agents WHERE name = ?", (name,)).fetchone()
    return None if row is None else _record(row)


def claim_agents(conn: Tx, host: str, *, every: bool) -> int:
    """Rows with no host (written before hosts existed) become `host`'s; with `every`
    (one host on its own sqlite file, whose name may have changed) all rows do."""
    where = "host != ?" if every else "host = '' AND ? != ''"
    return conn.execute(f"UPDATE agents SET host = ? WHERE {where}", (host, host)).rowcount  # noqa: S608


def claim_manager(conn: Tx, record: AgentRecord) -> AgentRecord:
    """Insert the manager's row unless a host already has one; return the row that holds
    (one manager per hive: the first host to start claims it)."""
    conn.execute(
        f"INSERT INTO agents {_COLUMNS} VALUES (?, ?, ?, ?, ?, ?, ?)"  # noqa: S608 - constants
        " ON CONFLICT (name) DO NOTHING",
        _values(record),
    )
    held = find_agent(conn, record.name)
    assert held is not None
    if held.host == record.host:
        conn.notify(AGENTS, record.name)
    return held

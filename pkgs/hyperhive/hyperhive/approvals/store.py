"""SQL for the approvals table."""

from __future__ import annotations

import sqlite3
from enum import StrEnum

from hyperhive.wire.responses import ApprovalInfo


class ApprovalKind(StrEnum):
    """What an approval authorises."""

    APPLY_COMMIT = "apply_commit"
    SPAWN = "spawn"


class ApprovalStatus(StrEnum):
    """pending -> approved | denied | failed."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    FAILED = "failed"


def _info(r: sqlite3.Row) -> ApprovalInfo:
    return ApprovalInfo(
        id=r["id"],
        agent=r["agent"],
        kind_=r["kind"],
        commit_ref=r["commit_ref"],
        fetched_sha=r["fetched_sha"],
        description=r["description"],
        requested_at=r["requested_at"],
        status=r["status"],
        resolved_at=r["resolved_at"],
        note=r["note"],
    )


def insert_approval(
    conn: sqlite3.Connection,
    *,
    agent: str,
    kind: ApprovalKind,
    description: str,
    now: int,
    commit_ref: str | None = None,
    fetched_sha: str | None = None,
) -> int:
    """Store a pending approval; return its id."""
    cur = conn.execute(
        "INSERT INTO approvals (agent, kind, commit_ref, fetched_sha, description,"
        " requested_at, status) VALUES (?, ?, ?, ?, ?, ?, 'pending')",
        (agent, kind.value, commit_ref, fetched_sha, description, now),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def find_approval(conn: sqlite3.Connection, approval_id: int) -> ApprovalInfo | None:
    """One approval, or None."""
    row = conn.execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)).fetchone()
    return None if row is None else _info(row)


def list_pending(conn: sqlite3.Connection) -> list[ApprovalInfo]:
    """Pending approvals, oldest first."""
    rows = conn.execute("SELECT * FROM approvals WHERE status = 'pending' ORDER BY id")
    return [_info(r) for r in rows]


def list_with_status(
    conn: sqlite3.Connection, status: ApprovalStatus, kind: ApprovalKind
) -> list[ApprovalInfo]:
    """Approvals of `kind` in `status`, oldest first."""
    rows = conn.execute(
        "SELECT * FROM approvals WHERE status = ? AND kind = ? ORDER BY id",
        (status.value, kind.value),
    )
    return [_info(r) for r in rows]


def pending_commit_agents(conn: sqlite3.Connection) -> list[str]:
    """Agents with at least one pending apply_commit (cheap: no rows are built)."""
    rows = conn.execute(
        "SELECT DISTINCT agent FROM approvals WHERE status = 'pending' AND kind = 'apply_commit'"
    )
    return [r[0] for r in rows]


def rollback_sha(conn: sqlite3.Connection, approval_id: int) -> str | None:
    """The main an apply_commit's deploy rolls back to, or None if none is recorded."""
    row = conn.execute("SELECT rollback_sha FROM approvals WHERE id = ?", (approval_id,)).fetchone()
    return None if row is None else row[0]


def record_rollback_sha(conn: sqlite3.Connection, approval_id: int, sha: str) -> str | None:
    """Record `sha` as the rollback point unless one is already; return the one in force."""
    conn.execute(
        "UPDATE approvals SET rollback_sha = ? WHERE id = ? AND rollback_sha IS NULL",
        (sha, approval_id),
    )
    return rollback_sha(conn, approval_id)


def list_recent(conn: sqlite3.Connection, limit: int) -> list[ApprovalInfo]:
    """The latest approvals of any status, newest first."""
    rows = conn.execute("SELECT * FROM approvals ORDER BY id DESC LIMIT ?", (limit,))
    return [_info(r) for r in rows]


def transition(
    conn: sqlite3.Connection,
    approval_id: int,
    *,
    to: ApprovalStatus,
    now: int,
    note: str | None = None,
    allowed_from: tuple[ApprovalStatus, ...] = (ApprovalStatus.PENDING,),
) -> bool:
    """Move an approval to `to` if it is in one of `allowed_from`; False if it was not."""
    marks = ",".join("?" * len(allowed_from))
    cur = conn.execute(
        f"UPDATE approvals SET status = ?, resolved_at = ?, note = coalesce(?, note)"  # noqa: S608
        f" WHERE id = ? AND status IN ({marks})",
        (to.value, now, note, approval_id, *(s.value for s in allowed_from)),
    )
    return cur.rowcount == 1


def fail_pending_for(conn: sqlite3.Connection, agent: str, note: str, now: int) -> list[int]:
    """Fail every pending approval of `agent`; return their ids."""
    rows = conn.execute(
        "UPDATE approvals SET status = 'failed', resolved_at = ?, note = ?"
        " WHERE agent = ? AND status = 'pending' RETURNING id",
        (now, note, agent),
    ).fetchall()
    return [r[0] for r in rows]

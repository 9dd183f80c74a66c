"""SQL for the approvals table."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from hyperhive.db.connection import CHANGED, Tx
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


def _info(r: Any) -> ApprovalInfo:
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
        host=r["host"],
    )


def insert_approval(
    conn: Tx,
    *,
    agent: str,
    kind: ApprovalKind,
    description: str,
    now: int,
    commit_ref: str | None = None,
    fetched_sha: str | None = None,
    host: str = "",
) -> int:
    """Store a pending approval that `host` will carry out; return its id."""
    row = conn.execute(
        "INSERT INTO approvals (agent, kind, commit_ref, fetched_sha, description,"
        " requested_at, status, host) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?) RETURNING id",
        (agent, kind.value, commit_ref, fetched_sha, description, now, host),
    ).fetchone()
    approval_id = int(row[0])
    conn.notify(CHANGED, f"approval {approval_id}")
    return approval_id


def find_approval(conn: Tx, approval_id: int) -> ApprovalInfo | None:
    """One approval, or None."""
    row = conn.execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)).fetchone()
    return None if row is None else _info(row)


def list_pending(conn: Tx) -> list[ApprovalInfo]:
    """Pending approvals, oldest first."""
    rows = conn.execute("SELECT * FROM approvals WHERE status = 'pending' ORDER BY id")
    return [_info(r) for r in rows]


def list_with_status(conn: Tx, status: ApprovalStatus, kind: ApprovalKind) -> list[ApprovalInfo]:
    """Approvals of `kind` in `status`, oldest first."""
    rows = conn.execute(
        "SELECT * FROM approvals WHERE status = ? AND kind = ? ORDER BY id",
        (status.value, kind.value),
    )
    return [_info(r) for r in rows]


def pending_commit_agents(conn: Tx) -> list[str]:
    """Agents with at least one pending apply_commit (cheap: no rows are built)."""
    rows = conn.execute(
        "SELECT DISTINCT agent FROM approvals WHERE status = 'pending' AND kind = 'apply_commit'"
    )
    return [r[0] for r in rows]


def rollback_sha(conn: Tx, approval_id: int) -> str | None:
    """The main an apply_commit's deploy rolls back to, or None if none is recorded."""
    row = conn.execute("SELECT rollback_sha FROM approvals WHERE id = ?", (approval_id,)).fetchone()
    return None if row is None else row[0]


def record_rollback_sha(conn: Tx, approval_id: int, sha: str) -> str | None:
    """Record `sha` as the rollback point unless one is already; return the one in force."""
    conn.execute(
        "UPDATE approvals SET rollback_sha = ? WHERE id = ? AND rollback_sha IS NULL",
        (sha, approval_id),
    )
    return rollback_sha(conn, approval_id)


def list_recent(conn: Tx, limit: int) -> list[ApprovalInfo]:
    """The latest approvals of any status, newest first."""
    rows = conn.execute("SELECT * FROM approvals ORDER BY id DESC LIMIT ?", (limit,))
    return [_info(r) for r in rows]


def transition(
    conn: Tx,
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
    if cur.rowcount == 1:
        conn.notify(CHANGED, f"approval {approval_id}")
    return cur.rowcount == 1


def fail_pending_for(conn: Tx, agent: str, note: str, now: int) -> list[int]:
    """Fail every pending approval of `agent`; return their ids."""
    rows = conn.execute(
        "UPDATE approvals SET status = 'failed', resolved_at = ?, note = ?"
        " WHERE agent = ? AND status = 'pending' RETURNING id",
        (now, note, agent),
    ).fetchall()
    for r in rows:
        conn.notify(CHANGED, f"approval {r[0]}")
    return [r[0] for r in rows]


def claim_approvals(conn: Tx, host: str, *, every: bool) -> int:
    """Approvals with no host (from before hosts existed), or `every` one, become `host`'s."""
    where = "host != ?" if every else "host = '' AND ? != ''"
    return conn.execute(f"UPDATE approvals SET host = ? WHERE {where}", (host, host)).rowcount  # noqa: S608

"""SQL for operator_questions."""

from __future__ import annotations

import json
from typing import Any

from hyperhive.db.connection import CHANGED, Tx
from hyperhive.wire.responses import QuestionInfo


def _info(r: Any) -> QuestionInfo:
    return QuestionInfo(
        id=r["id"],
        asker=r["asker"],
        question=r["question"],
        options=json.loads(r["options_json"]),
        multi=bool(r["multi"]),
        asked_at=r["asked_at"],
        deadline_at=r["deadline_at"],
        answered_at=r["answered_at"],
        answer=r["answer"],
    )


def insert_question(
    conn: Tx,
    *,
    asker: str,
    question: str,
    options: list[str],
    multi: bool,
    now: int,
    deadline_at: int | None,
) -> int:
    """Store a question; return its id."""
    row = conn.execute(
        "INSERT INTO operator_questions (asker, question, options_json, multi, asked_at,"
        " deadline_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        (asker, question, json.dumps(options), int(multi), now, deadline_at),
    ).fetchone()
    question_id = int(row[0])
    conn.notify(CHANGED, f"question {question_id}")
    return question_id


def resolve(conn: Tx, question_id: int, answer: str, now: int) -> QuestionInfo | None:
    """Record the answer if the question is still open; None if it was already resolved."""
    row = conn.execute(
        "UPDATE operator_questions SET answer = ?, answered_at = ?"
        " WHERE id = ? AND answered_at IS NULL RETURNING *",
        (answer, now, question_id),
    ).fetchone()
    if row is None:
        return None
    conn.notify(CHANGED, f"question {question_id}")
    return _info(row)


def find_question(conn: Tx, question_id: int) -> QuestionInfo | None:
    """One question, or None."""
    row = conn.execute("SELECT * FROM operator_questions WHERE id = ?", (question_id,)).fetchone()
    return None if row is None else _info(row)


def list_open(conn: Tx, limit: int | None = None) -> list[QuestionInfo]:
    """Unanswered questions, oldest first (the first `limit`, or all)."""
    rows = conn.execute(
        "SELECT * FROM operator_questions WHERE answered_at IS NULL ORDER BY id LIMIT ?",
        (2**62 if limit is None else limit,),
    ).fetchall()
    return [_info(r) for r in rows]


def open_count(conn: Tx, asker: str | None = None) -> int:
    """Unanswered questions (of `asker`, or of everyone)."""
    if asker is None:
        row = conn.execute(
            "SELECT count(*) FROM operator_questions WHERE answered_at IS NULL"
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT count(*) FROM operator_questions WHERE answered_at IS NULL AND asker = ?",
            (asker,),
        ).fetchone()
    return int(row[0])


def open_before(conn: Tx, question_id: int) -> int:
    """Unanswered questions older than `question_id` (its place on the first page)."""
    row = conn.execute(
        "SELECT count(*) FROM operator_questions WHERE answered_at IS NULL AND id < ?",
        (question_id,),
    ).fetchone()
    return int(row[0])


def list_expired(conn: Tx, now: int) -> list[int]:
    """Ids of open questions whose deadline has passed."""
    rows = conn.execute(
        "SELECT id FROM operator_questions WHERE answered_at IS NULL AND deadline_at <= ?",
        (now,),
    ).fetchall()
    return [r[0] for r in rows]


def next_deadline(conn: Tx) -> int | None:
    """The earliest deadline among open questions."""
    row = conn.execute(
        "SELECT min(deadline_at) FROM operator_questions WHERE answered_at IS NULL"
    ).fetchone()
    return None if row[0] is None else int(row[0])

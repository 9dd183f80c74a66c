"""The broker database's migrations. Append only: never edit or renumber a shipped one."""

from __future__ import annotations

from hyperhive.db.connection import Migration

BROKER_MIGRATIONS: list[Migration] = [
    (
        1,
        "initial",
        """
        CREATE TABLE agents (
            name TEXT PRIMARY KEY,
            role TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            destroyed_at INTEGER,
            allowed_recipients TEXT NOT NULL DEFAULT '[]'
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            sender TEXT NOT NULL,
            recipient TEXT NOT NULL,
            body TEXT NOT NULL,
            sent_at INTEGER NOT NULL,
            delivered_at INTEGER,
            acked_at INTEGER,
            in_reply_to INTEGER,
            broadcast INTEGER NOT NULL DEFAULT 0,
            deliveries INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX messages_inbox ON messages (recipient, delivered_at, id);
        CREATE INDEX messages_acked ON messages (acked_at) WHERE acked_at IS NOT NULL;
        CREATE TABLE approvals (
            id INTEGER PRIMARY KEY,
            agent TEXT NOT NULL,
            kind TEXT NOT NULL,
            commit_ref TEXT,
            fetched_sha TEXT,
            description TEXT NOT NULL DEFAULT '',
            requested_at INTEGER NOT NULL,
            status TEXT NOT NULL,
            resolved_at INTEGER,
            note TEXT
        );
        CREATE INDEX approvals_pending ON approvals (status) WHERE status = 'pending';
        CREATE TABLE operator_questions (
            id INTEGER PRIMARY KEY,
            asker TEXT NOT NULL,
            question TEXT NOT NULL,
            options_json TEXT NOT NULL DEFAULT '[]',
            multi INTEGER NOT NULL DEFAULT 0,
            asked_at INTEGER NOT NULL,
            deadline_at INTEGER,
            answered_at INTEGER,
            answer TEXT
        );
        CREATE INDEX questions_open ON operator_questions (answered_at)
            WHERE answered_at IS NULL;
        """,
    ),
    (
        2,
        "approvals_rollback_sha",
        # The main an apply_commit's deploy rolls back to, recorded when the deploy begins
        # (before: parsed back out of the approved/<id> tag's message). NULL on older rows.
        "ALTER TABLE approvals ADD COLUMN rollback_sha TEXT;",
    ),
]

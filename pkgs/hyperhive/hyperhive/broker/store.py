"""SQL for the messages table. Every function runs inside a writer transaction or a read."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from hyperhive.db.connection import Tx
from hyperhive.wire.responses import MessageItem, RecentRow

MESSAGES = "hive_msg"
"""Notification channel: `<id> <recipient>` — a message row for `recipient` committed
(id 0: earlier messages became undelivered again). Other hosts wake their parked recvs."""
ACKED = "hive_acked"
"""Notification channel: JSON {sender: bytes} released by acks, for per-sender limits
(several notifications when one ack released more senders than one payload holds)."""
ACKED_BYTES = 4000
"""Bytes of one `hive_acked` payload at most (PostgreSQL's NOTIFY limit is 8,000)."""


def insert_message(
    conn: Tx,
    *,
    sender: str,
    recipient: str,
    body: str,
    now: int,
    in_reply_to: int | None = None,
    broadcast: bool = False,
) -> int:
    """Store one message; return its id."""
    row = conn.execute(
        "INSERT INTO messages (sender, recipient, body, sent_at, in_reply_to, broadcast)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        (sender, recipient, body, now, in_reply_to, int(broadcast)),
    ).fetchone()
    message_id = int(row[0])
    conn.notify(MESSAGES, f"{message_id} {recipient}")
    return message_id


def supersede_events(conn: Tx, recipient: str, events: Iterable[str], agent: str, now: int) -> int:
    """Retire undelivered system events about `agent` of the kinds `events` (marked handled,
    never delivered): a newer event says the opposite. Returns how many."""
    d = conn.dialect
    event, about = d.json_text.format("body", "event"), d.json_text.format("body", "agent")
    cur = conn.execute(
        "UPDATE messages SET delivered_at = ?, acked_at = ?"  # noqa: S608 - dialect text only
        " WHERE recipient = ? AND sender = 'system' AND delivered_at IS NULL"
        f" AND {d.text_in_json_array.format(event)} AND {about} = ?",
        (now, now, recipient, json.dumps(sorted(set(events))), agent),
    )
    return cur.rowcount


def pop_undelivered(conn: Tx, recipient: str, limit: int, now: int) -> list[MessageItem]:
    """Mark the oldest `limit` undelivered messages of `recipient` delivered; return them."""
    rows = conn.execute(
        "UPDATE messages SET delivered_at = ?, deliveries = deliveries + 1"
        " WHERE id IN (SELECT id FROM messages WHERE recipient = ? AND delivered_at IS NULL"
        " ORDER BY id LIMIT ?)"
        " RETURNING id, sender, body, sent_at, in_reply_to, broadcast, deliveries",
        (now, recipient, limit),
    ).fetchall()
    items = [
        MessageItem(
            id=r["id"],
            sender=r["sender"],
            body=r["body"],
            sent_at=r["sent_at"],
            in_reply_to=r["in_reply_to"],
            broadcast=bool(r["broadcast"]),
            redelivered=r["deliveries"] > 1,
        )
        for r in rows
    ]
    items.sort(key=lambda m: m.id)
    return items


def _released(conn: Tx, rows: list[Any]) -> list[tuple[str, int]]:
    """(sender, body bytes) of each acked row; other hosts hear the totals per sender."""
    released = [(r[0], int(r[1])) for r in rows]
    totals: dict[str, int] = {}
    for sender, size in released:
        totals[sender] = totals.get(sender, 0) + size
    for payload in acked_payloads(totals):
        conn.notify(ACKED, payload)
    return released


def acked_payloads(totals: dict[str, int]) -> list[str]:
    """`totals` as JSON objects of at most ACKED_BYTES each: one ack may release the bytes
    of hundreds of senders, and a NOTIFY payload holds 8,000 bytes."""
    payloads: list[str] = []
    chunk: dict[str, int] = {}
    size = 2
    for sender, total in totals.items():
        entry = len(json.dumps(sender).encode()) + len(str(total)) + 2
        if chunk and size + entry > ACKED_BYTES:
            payloads.append(json.dumps(chunk, separators=(",", ":")))
            chunk, size = {}, 2
        chunk[sender] = total
        size += entry
    if chunk:
        payloads.append(json.dumps(chunk, separators=(",", ":")))
    return payloads


def ack(conn: Tx, recipient: str, ids: Sequence[int], now: int) -> list[tuple[str, int]]:
    """Ack delivered messages of `recipient` among `ids`; return (sender, body bytes) of
    each one that changed."""
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"UPDATE messages SET acked_at = ? WHERE recipient = ? AND id IN ({marks})"  # noqa: S608
        " AND delivered_at IS NOT NULL AND acked_at IS NULL"
        f" RETURNING sender, {conn.dialect.body_bytes}",
        (now, recipient, *ids),
    ).fetchall()
    return _released(conn, rows)


def ack_inbox(conn: Tx, recipient: str, ids: Sequence[int], now: int) -> list[tuple[str, int]]:
    """Mark messages of an inbox nobody pops (the operator's) read: delivered and acked at
    once. Return (sender, body bytes) of each one that changed."""
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        "UPDATE messages SET delivered_at = coalesce(delivered_at, ?), acked_at = ?"  # noqa: S608
        f" WHERE recipient = ? AND id IN ({marks}) AND acked_at IS NULL"
        f" RETURNING sender, {conn.dialect.body_bytes}",
        (now, now, recipient, *ids),
    ).fetchall()
    return _released(conn, rows)


def read_all(conn: Tx, recipient: str, up_to: int | None, now: int) -> list[tuple[str, int]]:
    """`ack_inbox` for every unread message of `recipient` with id <= `up_to` (or all)."""
    rows = conn.execute(
        "UPDATE messages SET delivered_at = coalesce(delivered_at, ?), acked_at = ?"  # noqa: S608
        " WHERE recipient = ? AND acked_at IS NULL AND id <= ?"
        f" RETURNING sender, {conn.dialect.body_bytes}",
        (now, now, recipient, 2**63 - 1 if up_to is None else up_to),
    ).fetchall()
    return _released(conn, rows)


def unacked_bytes_by_sender(conn: Tx) -> dict[str, int]:
    """Bytes of stored, not yet acked message bodies per sender (read once at start)."""
    rows = conn.execute(
        f"SELECT sender, sum({conn.dialect.body_bytes}) FROM messages WHERE acked_at IS NULL"  # noqa: S608
        " GROUP BY sender"
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def release(conn: Tx, recipient: str, ids: Iterable[int]) -> int:
    """Make delivered-but-unacked messages undelivered again (their reader went away)."""
    id_list = list(ids)
    if not id_list:
        return 0
    marks = ",".join("?" * len(id_list))
    cur = conn.execute(
        f"UPDATE messages SET delivered_at = NULL WHERE recipient = ? AND id IN ({marks})"  # noqa: S608
        " AND acked_at IS NULL",
        (recipient, *id_list),
    )
    if cur.rowcount:
        conn.notify(MESSAGES, f"0 {recipient}")
    return cur.rowcount


def release_unheld(conn: Tx, recipient: str, held: Sequence[int]) -> int:
    """Make every delivered, unacked message of `recipient` undelivered except `held` (what
    its live readers hold): the repair after a pop whose commit may have gone unseen."""
    keep = f" AND id NOT IN ({','.join('?' * len(held))})" if held else ""
    cur = conn.execute(
        "UPDATE messages SET delivered_at = NULL WHERE recipient = ?"  # noqa: S608
        f" AND delivered_at IS NOT NULL AND acked_at IS NULL{keep}",
        (recipient, *held),
    )
    if cur.rowcount:
        conn.notify(MESSAGES, f"0 {recipient}")
    return cur.rowcount


def release_all(conn: Tx, host: str) -> int:
    """At daemon start no reader of this host is connected: every unacked delivery to an
    agent `host` runs is undone (other hosts' readers may hold theirs)."""
    return conn.execute(
        "UPDATE messages SET delivered_at = NULL"
        " WHERE delivered_at IS NOT NULL AND acked_at IS NULL"
        " AND recipient IN (SELECT name FROM agents WHERE host = ?)",
        (host,),
    ).rowcount


def unread_count(conn: Tx, recipient: str) -> int:
    """Undelivered messages for `recipient`."""
    row = conn.execute(
        "SELECT count(*) FROM messages WHERE recipient = ? AND delivered_at IS NULL",
        (recipient,),
    ).fetchone()
    return int(row[0])


def _recent_row(r: Any) -> RecentRow:
    return RecentRow(
        id=r["id"],
        sender=r["sender"],
        recipient=r["recipient"],
        body=r["body"],
        sent_at=r["sent_at"],
        delivered=r["delivered_at"] is not None,
        acked=r["acked_at"] is not None,
        in_reply_to=r["in_reply_to"],
        broadcast=bool(r["broadcast"]),
    )


RECENT_BUDGET = 1024 * 1024
"""Characters of bodies one `recent` reply carries at most (the newest message always):
500 rows of 256 KiB would be a 128 MB reply, built in the daemon's memory per request."""


def recent_for(conn: Tx, name: str, limit: int, budget: int = RECENT_BUDGET) -> list[RecentRow]:
    """The latest `limit` messages to or from `name`, oldest first, cut (from the oldest)
    where their bodies pass `budget` characters."""
    sizes = conn.execute(
        "SELECT id, length(body) FROM messages WHERE recipient = ?"
        " UNION ALL SELECT id, length(body) FROM messages WHERE sender = ? AND recipient != ?"
        " ORDER BY id DESC LIMIT ?",
        (name, name, name, limit),
    ).fetchall()
    ids: list[int] = []
    total = 0
    for message_id, size in sizes:
        if ids and total + size > budget:
            break
        ids.append(message_id)
        total += size
    return message_rows(conn, ids)


def message_rows(conn: Tx, ids: Sequence[int]) -> list[RecentRow]:
    """The messages `ids` (those that exist), oldest first."""
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT * FROM messages WHERE id IN ({marks}) ORDER BY id",  # noqa: S608
        list(ids),
    ).fetchall()
    return [_recent_row(r) for r in rows]


def recent_all(conn: Tx, limit: int, after_id: int = 0) -> list[RecentRow]:
    """The latest `limit` messages of all traffic with id > after_id, oldest first."""
    rows = conn.execute(
        "SELECT * FROM (SELECT * FROM messages WHERE id > ? ORDER BY id DESC LIMIT ?) AS newest"
        " ORDER BY id",
        (after_id, limit),
    ).fetchall()
    return [_recent_row(r) for r in rows]


def delete_acked_before(conn: Tx, cutoff: int) -> int:
    """Retention: delete acked messages sent before `cutoff`; undelivered ones stay.

    The newest row is always kept: sqlite gives a new row max(id) + 1, so deleting the
    newest would hand its id (and those below it) out again, and an agent's "#12" or an
    `in_reply_to` would name another message.
    """
    return conn.execute(
        "DELETE FROM messages WHERE acked_at IS NOT NULL AND sent_at < ?"
        " AND id < (SELECT MAX(id) FROM messages)",
        (cutoff,),
    ).rowcount

"""Send, park-and-wake recv, ack, broadcast, system events and retention (SPEC §5).

Wake-up is event driven: a parked recv waits on a future that `notify` resolves after a
send to that recipient committed. Lost wake-ups are impossible because each recipient has a
version counter: recv reads it before popping, and parks only if no send bumped it since —
checking and parking happen on the event loop with no await in between.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Sequence
from functools import partial

from hyperhive.broker import store
from hyperhive.db.connection import Database
from hyperhive.errors import Forbidden, NotFound
from hyperhive.hub import Hub
from hyperhive.lifecycle.names import BROADCAST, MANAGER, OPERATOR, SYSTEM
from hyperhive.lifecycle.registry import Registry
from hyperhive.tasks import TaskSet
from hyperhive.wire.responses import MessageItem, RecentRow

logger = logging.getLogger(__name__)


class Broker:
    """The message service over the broker database."""

    def __init__(self, db: Database, registry: Registry, hub: Hub) -> None:
        self._db = db
        self._registry = registry
        self._hub = hub
        self._versions: dict[str, int] = {}
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._background = TaskSet()

    # -- routing ---------------------------------------------------------------------------

    def _resolve_recipients(self, sender: str, to: str) -> list[str]:
        if to == BROADCAST:
            self._check_allowed(sender, to)
            return [name for name in self._registry.live_names() if name != sender]
        record = self._registry.find(to)
        if to == OPERATOR or (record is not None and record.live):
            if to == sender:
                raise Forbidden(f"{sender} cannot send a message to itself")
            self._check_allowed(sender, to)
            return [to]
        live = self._registry.live_names()
        known = ", ".join([*(n for n in live if n != MANAGER), MANAGER, OPERATOR])
        raise NotFound(f"unknown recipient {to!r} — known: {known}")

    def _check_allowed(self, sender: str, to: str) -> None:
        agent = self._registry.find(sender)
        if agent is None or not agent.allowed_recipients or to in (MANAGER, OPERATOR):
            return
        if to not in agent.allowed_recipients:
            allowed = ", ".join(agent.allowed_recipients)
            raise Forbidden(
                f"{sender} may not send to {to!r}: its allowedRecipients are {allowed}"
                " (plus manager and operator); ask the manager to change agent.nix"
            )

    # -- sending ---------------------------------------------------------------------------

    async def send(
        self, sender: str, to: str, body: str, in_reply_to: int | None = None
    ) -> list[int]:
        """Store a message (one row per recipient for `*`) and wake their parked recvs."""
        recipients = self._resolve_recipients(sender, to)
        broadcast = to == BROADCAST
        now = int(time.time())

        def insert(conn: sqlite3.Connection) -> list[int]:
            return [
                store.insert_message(
                    conn,
                    sender=sender,
                    recipient=r,
                    body=body,
                    now=now,
                    in_reply_to=in_reply_to,
                    broadcast=broadcast,
                )
                for r in recipients
            ]

        ids = await self._db.write(insert)
        for message_id, recipient in zip(ids, recipients, strict=True):
            self.committed(message_id, sender, recipient, body, now, in_reply_to, broadcast)
        logger.debug("%s -> %s: %d row(s)", sender, to, len(ids))
        return ids

    async def system_event(self, recipient: str, event: str, **fields: object) -> int:
        """Send a `system` message whose body is JSON with an `event` field."""
        body = json.dumps({"event": event, **fields}, sort_keys=True)
        return await self._system_message(recipient, body)

    async def kick_agent(self, name: str, reason: str) -> int:
        """A plain system note that makes a (re)started agent look at its inbox."""
        return await self._system_message(name, reason)

    async def _system_message(self, recipient: str, body: str) -> int:
        now = int(time.time())
        message_id = await self._db.write(
            lambda conn: store.insert_message(
                conn, sender=SYSTEM, recipient=recipient, body=body, now=now
            )
        )
        self.committed(message_id, SYSTEM, recipient, body, now)
        return message_id

    def committed(
        self,
        message_id: int,
        sender: str,
        recipient: str,
        body: str,
        now: int,
        in_reply_to: int | None = None,
        broadcast: bool = False,
    ) -> None:
        """A message row was committed (possibly by another service's transaction): wake its
        recipient's parked recvs and show it in the message flow."""
        self.notify(recipient)
        if not self._hub.active:
            return  # nobody watches the flow: skip building the row
        row = RecentRow(
            id=message_id,
            sender=sender,
            recipient=recipient,
            body=body,
            sent_at=now,
            delivered=False,
            acked=False,
            in_reply_to=in_reply_to,
            broadcast=broadcast,
        )
        self._hub.publish("message", row.model_dump(by_alias=True))

    def notify(self, recipient: str) -> None:
        """A message for `recipient` was committed: wake its parked recvs."""
        self._versions[recipient] = self._versions.get(recipient, 0) + 1
        for waiter in self._waiters.pop(recipient, ()):
            if not waiter.done():
                waiter.set_result(None)

    # -- receiving -------------------------------------------------------------------------

    async def recv(self, recipient: str, wait_seconds: float, limit: int) -> list[MessageItem]:
        """Pop up to `limit` messages, parking up to `wait_seconds` until one arrives."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while True:
            version = self._versions.get(recipient, 0)
            now = int(time.time())
            pop = asyncio.ensure_future(
                self._db.write(
                    partial(store.pop_undelivered, recipient=recipient, limit=limit, now=now)
                )
            )
            try:
                items = await asyncio.shield(pop)
            except asyncio.CancelledError:
                # The pop commits regardless; its messages must not stay delivered to
                # nobody, so hand them back once it has.
                pop.add_done_callback(partial(self._release_abandoned, recipient))
                raise
            if items:
                return items
            if self._versions.get(recipient, 0) != version:
                continue  # a send committed while we looked: look again
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(recipient, set()).add(waiter)
            try:
                async with asyncio.timeout(remaining):
                    await waiter
            except TimeoutError:
                return []
            finally:
                waiters = self._waiters.get(recipient)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[recipient]

    def _release_abandoned(self, recipient: str, pop: asyncio.Future[list[MessageItem]]) -> None:
        if pop.cancelled() or pop.exception() is not None or not pop.result():
            return
        ids = [item.id for item in pop.result()]
        self._background.spawn(self._release_quietly(recipient, ids), f"release-{recipient}")

    async def _release_quietly(self, recipient: str, ids: list[int]) -> None:
        await self.release(recipient, ids)

    async def ack(self, recipient: str, ids: Sequence[int]) -> int:
        """Ack messages `recipient` received; unknown or foreign ids are ignored."""
        now = int(time.time())
        return await self._db.write(lambda conn: store.ack(conn, recipient, ids, now))

    async def release(self, recipient: str, ids: Sequence[int]) -> int:
        """Undo deliveries that were never acked (the reader disconnected)."""
        if not ids:
            return 0
        count = await self._db.write(lambda conn: store.release(conn, recipient, ids))
        if count:
            logger.info("%s left %d unacked message(s): redelivering", recipient, count)
            self.notify(recipient)
        return count

    async def release_all(self) -> int:
        """At startup: every delivered-but-unacked message is delivered again."""
        return await self._db.write(store.release_all)

    def unread(self, recipient: str) -> int:
        """Undelivered messages for `recipient`."""
        return self._db.read(lambda conn: store.unread_count(conn, recipient))

    def recent(self, name: str, limit: int) -> list[RecentRow]:
        """Latest traffic to and from `name` (non-consuming)."""
        return self._db.read(lambda conn: store.recent_for(conn, name, limit))

    def recent_all(self, limit: int, after_id: int = 0) -> list[RecentRow]:
        """Latest traffic of the whole hive (the dashboard's message flow)."""
        return self._db.read(lambda conn: store.recent_all(conn, limit, after_id))

    # -- retention -------------------------------------------------------------------------

    async def delete_old(self, retention_days: int) -> int:
        """Delete acked messages older than `retention_days`."""
        cutoff = int(time.time()) - retention_days * 86400
        return await self._db.write(lambda conn: store.delete_acked_before(conn, cutoff))

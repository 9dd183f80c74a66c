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
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial

from hyperhive.agents.names import BROADCAST, MANAGER, OPERATOR, SYSTEM
from hyperhive.agents.registry import Registry
from hyperhive.broker import store
from hyperhive.db.connection import Database, Tx
from hyperhive.errors import Forbidden, HyperhiveError, InDoubt, LimitExceeded, NotFound
from hyperhive.hub import Hub
from hyperhive.tasks import TaskSet
from hyperhive.wire.responses import MessageItem, RecentRow

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
FLOW_ROWS = 200
"""Other hosts' messages read at once for the flow; older ones of a burst are left out
(the dashboard's history shows them)."""
UNLIMITED_SENDERS = frozenset({OPERATOR, SYSTEM})
"""Senders no per-sender limit applies to: the operator and the daemon itself."""


@dataclass(frozen=True)
class SendLimits:
    """Per-sender limits (settings: HYPERHIVE_SEND_RATE_PER_SECOND, HYPERHIVE_SEND_BURST,
    HYPERHIVE_MAX_UNACKED_BYTES_PER_SENDER)."""

    rate_per_second: float = 100.0
    burst: int = 1000
    max_unacked_bytes: int = 64 * MIB


@dataclass
class _Bucket:
    tokens: float
    at: float


def _mib(size: int) -> str:
    return f"{size / MIB:.1f} MiB"


class Broker:
    """The message service over the broker database.

    Per agent sender: a token bucket of sends, and the bytes of its stored messages that
    no recipient has acked yet (kept in memory: loaded once at start, reserved before each
    insert, released by acks). The operator's inbox counts too: its messages stay unacked
    until the operator reads them (`ack` on host.sock).
    """

    def __init__(
        self, db: Database, registry: Registry, hub: Hub, limits: SendLimits | None = None
    ) -> None:
        self._db = db
        self._registry = registry
        self._hub = hub
        self.limits = limits or SendLimits()
        self._buckets: dict[str, _Bucket] = {}
        self._unacked: dict[str, int] = db.read(store.unacked_bytes_by_sender)
        self._versions: dict[str, int] = {}
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._background = TaskSet()
        self._held: dict[str, set[int]] = {}
        """Ids this daemon handed to a recipient's readers that are not acked or released."""
        self._stranded: set[str] = set()
        """Recipients whose pop may have committed unseen (InDoubt): messages may be marked
        delivered that no reader holds; they are handed back before the next pop."""
        self._flow: list[int] = []
        """Ids of other hosts' messages waiting to be read for the flow (`_publish_flow`)."""
        db.subscribe(store.MESSAGES, self._message_elsewhere)
        db.subscribe(store.ACKED, self._acked_elsewhere)
        db.on_resync(self._resync)

    # -- other hosts (a hive on PostgreSQL) -------------------------------------------------

    def _message_elsewhere(self, payload: str, mine: bool) -> None:
        """Another host committed a message (or made messages undelivered again): wake the
        recipient's recvs parked here, and show the message in this host's flow."""
        if mine:
            return  # this host woke its recvs itself after the commit
        raw_id, _, recipient = payload.partition(" ")
        if not raw_id.isdigit() or not recipient:
            return
        self.notify(recipient)
        if raw_id != "0" and self._hub.active:
            if not self._flow:
                asyncio.get_running_loop().call_soon(self._publish_flow)
            self._flow.append(int(raw_id))

    def _publish_flow(self) -> None:
        """Show other hosts' messages in this host's flow: one read for all that arrived
        together (a broadcast is a row per agent), the newest FLOW_ROWS of them."""
        ids, self._flow = self._flow[-FLOW_ROWS:], []
        try:
            rows = self._db.read(lambda conn: store.message_rows(conn, ids))
        except HyperhiveError as exc:
            logger.warning("could not read other hosts' messages for the flow: %s", exc.message)
            return
        for row in rows:
            self._hub.publish("message", row.model_dump(by_alias=True))

    def _acked_elsewhere(self, payload: str, mine: bool) -> None:
        """Another host's agents acked messages: release their senders' unacked bytes."""
        if mine:
            return
        try:
            totals = json.loads(payload)
        except ValueError:
            return
        if isinstance(totals, dict):
            self._acked([(s, n) for s, n in totals.items() if isinstance(n, int)])

    def _resync(self) -> None:
        """Notifications may have been missed: every parked recv looks again, and the
        per-sender byte counts are read afresh."""
        for recipient in list(self._waiters):
            self.notify(recipient)
        try:
            self._unacked = self._db.read(store.unacked_bytes_by_sender)
        except HyperhiveError as exc:
            logger.warning("could not re-read unacked bytes: %s", exc.message)

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

    # -- limits ----------------------------------------------------------------------------

    def unacked_bytes(self, sender: str) -> int:
        """Bytes of `sender`'s stored messages that no recipient has acked yet."""
        return self._unacked.get(sender, 0)

    def _admit(self, sender: str, to: str, size: int) -> None:
        """Refuse a send over `sender`'s limits, else take a token and reserve `size`.

        No await here: the check and the reservation are one step on the event loop."""
        if sender in UNLIMITED_SENDERS:
            return
        limits = self.limits
        held = self._unacked.get(sender, 0)
        if held + size > limits.max_unacked_bytes:
            raise LimitExceeded(
                f"{sender} has {_mib(held)} of sent messages that their recipients have not"
                f" acked yet (the operator: not read yet), and this send to {to!r} adds"
                f" {_mib(size)}: the limit is {_mib(limits.max_unacked_bytes)} per sender"
                " (HYPERHIVE_MAX_UNACKED_BYTES_PER_SENDER). Nothing was stored: wait until"
                " the recipients recv and ack (the operator reads the inbox), send less, or"
                " ask the operator to raise the limit"
            )
        now = time.monotonic()
        bucket = self._buckets.get(sender)
        if bucket is None:
            bucket = self._buckets[sender] = _Bucket(float(limits.burst), now)
        bucket.tokens = min(
            float(limits.burst), bucket.tokens + (now - bucket.at) * limits.rate_per_second
        )
        bucket.at = now
        if bucket.tokens < 1.0:
            wait = (1.0 - bucket.tokens) / limits.rate_per_second
            raise LimitExceeded(
                f"{sender} is sending too fast: {limits.burst} sends at once, then"
                f" {limits.rate_per_second:g} per second (HYPERHIVE_SEND_RATE_PER_SECOND,"
                f" HYPERHIVE_SEND_BURST). Nothing was stored: retry in {max(wait, 0.01):.2f} s, or"
                " batch several messages into one"
            )
        bucket.tokens -= 1.0
        self._unacked[sender] = held + size

    def _unreserve(self, sender: str, size: int) -> None:
        if sender in UNLIMITED_SENDERS or not size:
            return
        left = self._unacked.get(sender, 0) - size
        if left > 0:
            self._unacked[sender] = left
        else:
            self._unacked.pop(sender, None)

    def _acked(self, released: list[tuple[str, int]]) -> None:
        for sender, size in released:
            self._unreserve(sender, size)

    # -- sending ---------------------------------------------------------------------------

    async def send(
        self, sender: str, to: str, body: str, in_reply_to: int | None = None
    ) -> list[int]:
        """Store a message (one row per recipient for `*`) and wake their parked recvs."""
        recipients = self._resolve_recipients(sender, to)
        broadcast = to == BROADCAST
        now = int(time.time())
        size = 0 if sender in UNLIMITED_SENDERS else len(body.encode()) * len(recipients)
        self._admit(sender, to, size)

        def insert(conn: Tx) -> list[int]:
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

        try:
            ids = await self._db.write(insert)
        except BaseException:
            self._unreserve(sender, size)  # nothing stored
            raise
        for message_id, recipient in zip(ids, recipients, strict=True):
            self.committed(message_id, sender, recipient, body, now, in_reply_to, broadcast)
        logger.debug("%s -> %s: %d row(s)", sender, to, len(ids))
        return ids

    async def system_event(
        self, recipient: str, event: str, *, supersedes: Iterable[str] = (), **fields: object
    ) -> int:
        """Send a `system` message whose body is JSON with an `event` field.

        `supersedes`: event kinds about the same `agent` field that this one makes stale
        (`logged_in` after `needs_login`); those still undelivered are retired in the same
        transaction, so the recipient never acts on news that is no longer true.
        """
        body = json.dumps({"event": event, **fields}, sort_keys=True)
        kinds = tuple(supersedes)
        agent = fields.get("agent")
        if not kinds or not isinstance(agent, str):
            return await self._system_message(recipient, body)
        now = int(time.time())

        def write(conn: Tx) -> int:
            store.supersede_events(conn, recipient, kinds, agent, now)
            return store.insert_message(
                conn, sender=SYSTEM, recipient=recipient, body=body, now=now
            )

        message_id = await self._db.write(write)
        self.committed(message_id, SYSTEM, recipient, body, now)
        return message_id

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

    def parked(self, recipient: str) -> int:
        """How many recvs of `recipient` are parked here now (waiting for a message)."""
        return len(self._waiters.get(recipient, ()))

    async def recv(self, recipient: str, wait_seconds: float, limit: int) -> list[MessageItem]:
        """Pop up to `limit` messages, parking up to `wait_seconds` until one arrives."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while True:
            if recipient in self._stranded:
                await self._release_stranded(recipient)
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
            except InDoubt:
                self._stranded.add(recipient)
                raise
            if items:
                self._held.setdefault(recipient, set()).update(item.id for item in items)
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
        released = await self._db.write(lambda conn: store.ack(conn, recipient, ids, now))
        self._acked(released)
        self._let_go(recipient, ids)
        return len(released)

    def _let_go(self, recipient: str, ids: Sequence[int]) -> None:
        held = self._held.get(recipient)
        if held is not None:
            held.difference_update(ids)
            if not held:
                del self._held[recipient]

    async def _release_stranded(self, recipient: str) -> None:
        """Hand back what a pop that may have committed unseen left delivered: every
        delivered, unacked message of `recipient` that no reader here holds."""
        held = sorted(self._held.get(recipient, ()))
        count = await self._db.write(lambda conn: store.release_unheld(conn, recipient, held))
        self._stranded.discard(recipient)
        if count:
            logger.info(
                "%s: %d message(s) a broken pop left delivered: redelivering", recipient, count
            )

    async def ack_operator(self, ids: Sequence[int]) -> int:
        """The operator has read these messages of its inbox (they are never popped):
        mark them delivered and acked, so they count against no sender and the retention
        sweep deletes them like any acked message. Other ids are ignored."""
        now = int(time.time())
        released = await self._db.write(lambda conn: store.ack_inbox(conn, OPERATOR, ids, now))
        self._acked(released)
        return len(released)

    async def read_inbox(self, up_to: int | None = None) -> int:
        """The operator has read its inbox up to message `up_to` (all of it when None)."""
        now = int(time.time())
        released = await self._db.write(lambda conn: store.read_all(conn, OPERATOR, up_to, now))
        self._acked(released)
        return len(released)

    async def release(self, recipient: str, ids: Sequence[int]) -> int:
        """Undo deliveries that were never acked (the reader disconnected)."""
        if not ids:
            return 0
        self._let_go(recipient, ids)  # their reader is gone either way
        try:
            count = await self._db.write(lambda conn: store.release(conn, recipient, ids))
        except HyperhiveError:
            # Still marked delivered, now to nobody: hand them back before the next pop.
            self._stranded.add(recipient)
            raise
        if count:
            logger.info("%s left %d unacked message(s): redelivering", recipient, count)
            self.notify(recipient)
        return count

    async def release_all(self) -> int:
        """At startup: every delivered-but-unacked message to an agent this host runs is
        delivered again."""
        host = self._registry.host
        return await self._db.write(lambda conn: store.release_all(conn, host))

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

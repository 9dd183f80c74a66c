"""Approval requests and the operator's decisions (SPEC §8)."""

from __future__ import annotations

import logging
import time

from hyperhive.approvals import store
from hyperhive.approvals.store import ApprovalKind, ApprovalStatus
from hyperhive.broker.service import Broker
from hyperhive.db.connection import Database
from hyperhive.errors import Conflict, NotFound
from hyperhive.hub import Hub
from hyperhive.lifecycle.names import MANAGER, validate_name
from hyperhive.lifecycle.registry import Registry
from hyperhive.lifecycle.service import Lifecycle
from hyperhive.wire.responses import ApprovalInfo

logger = logging.getLogger(__name__)


class Approvals:
    """Pending approvals and their resolution."""

    def __init__(
        self, db: Database, registry: Registry, broker: Broker, lifecycle: Lifecycle, hub: Hub
    ) -> None:
        self._hub = hub
        self._db = db
        self._registry = registry
        self._broker = broker
        self._lifecycle = lifecycle

    def list_pending(self) -> list[ApprovalInfo]:
        """Pending approvals, oldest first."""
        return self._db.read(store.list_pending)

    def get(self, approval_id: int) -> ApprovalInfo:
        """One approval, or NotFound."""
        info = self._db.read(lambda conn: store.find_approval(conn, approval_id))
        if info is None:
            raise NotFound(f"no approval #{approval_id}")
        return info

    def _changed(self, approval_id: int) -> None:
        self._hub.publish("approval", self.get(approval_id).model_dump(by_alias=True))

    async def request_spawn(self, raw_name: str, description: str) -> int:
        """Queue a spawn (or revive) for the operator."""
        name = validate_name(raw_name)
        existing = self._registry.find(name)
        if existing is not None and existing.live:
            raise Conflict(f"agent {name!r} already exists")
        for pending in self.list_pending():
            if pending.agent == name and pending.kind_ == ApprovalKind.SPAWN:
                raise Conflict(f"a spawn of {name!r} is already pending (approval #{pending.id})")
        now = int(time.time())
        approval_id = await self._db.write(
            lambda conn: store.insert_approval(
                conn, agent=name, kind=ApprovalKind.SPAWN, description=description, now=now
            )
        )
        self._changed(approval_id)
        return approval_id

    async def approve(self, approval_id: int) -> ApprovalInfo:
        """Carry out a pending approval; approving twice acts once."""
        info = self.get(approval_id)
        if info.status != ApprovalStatus.PENDING:
            raise Conflict(f"approval #{approval_id} is already {info.status}")
        now = int(time.time())
        claimed = await self._db.write(
            lambda conn: store.transition(conn, approval_id, to=ApprovalStatus.APPROVED, now=now)
        )
        if not claimed:
            raise Conflict(f"approval #{approval_id} was resolved meanwhile")
        self._changed(approval_id)
        if info.kind_ == ApprovalKind.SPAWN:
            try:
                await self._lifecycle.spawn(info.agent)
            except Exception as exc:
                logger.exception("spawn of %s failed", info.agent)
                await self._fail(approval_id, f"spawn failed: {exc}")
                raise
        else:
            await self._fail(approval_id, "apply_commit needs the git flow (not built yet)")
            raise Conflict("apply_commit approvals are not supported by this daemon yet")
        await self._broker.system_event(
            MANAGER, "approval_resolved", id=approval_id, agent=info.agent, status="approved"
        )
        return self.get(approval_id)

    async def deny(self, approval_id: int, note: str | None) -> ApprovalInfo:
        """Deny a pending approval with an optional note."""
        info = self.get(approval_id)
        now = int(time.time())
        denied = await self._db.write(
            lambda conn: store.transition(
                conn, approval_id, to=ApprovalStatus.DENIED, now=now, note=note
            )
        )
        if not denied:
            raise Conflict(f"approval #{approval_id} is already {info.status}")
        self._changed(approval_id)
        await self._broker.system_event(
            MANAGER,
            "approval_resolved",
            id=approval_id,
            agent=info.agent,
            status="denied",
            note=note,
        )
        return self.get(approval_id)

    async def _fail(self, approval_id: int, note: str) -> None:
        now = int(time.time())
        await self._db.write(
            lambda conn: store.transition(
                conn,
                approval_id,
                to=ApprovalStatus.FAILED,
                now=now,
                note=note,
                allowed_from=(ApprovalStatus.PENDING, ApprovalStatus.APPROVED),
            )
        )
        self._changed(approval_id)

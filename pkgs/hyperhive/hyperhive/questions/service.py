"""Ask, answer, cancel and expire operator questions; one operator_answered event each.

Architecture Invariant: a question is resolved and its event stored in one transaction,
guarded by `answered_at IS NULL`, so a question can never be answered twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from functools import partial

from hyperhive.agents.names import SYSTEM
from hyperhive.broker import store as broker_store
from hyperhive.broker.service import Broker
from hyperhive.db.connection import CHANGED, Database, Tx
from hyperhive.errors import InvalidRequest, LimitExceeded, NotFound
from hyperhive.hub import Hub
from hyperhive.questions import store
from hyperhive.wire.responses import QuestionInfo

logger = logging.getLogger(__name__)

CANCELLED = "[cancelled]"
EXPIRED = "[expired]"


class QuestionService:
    """Operator questions plus the ttl watchdog."""

    def __init__(
        self, db: Database, broker: Broker, hub: Hub, max_open_per_agent: int = 20
    ) -> None:
        self.max_open_per_agent = max_open_per_agent
        self._db = db
        self._broker = broker
        self._hub = hub
        self._changed = asyncio.Event()
        db.subscribe(CHANGED, self._changed_elsewhere)

    def _changed_elsewhere(self, payload: str, mine: bool) -> None:
        """Another host asked or resolved a question: show it, and re-read deadlines."""
        topic, _, raw_id = payload.partition(" ")
        if mine or topic != "question" or not raw_id.isdigit():
            return
        self._changed.set()
        self._emit(int(raw_id))

    async def ask(
        self,
        asker: str,
        question: str,
        options: list[str],
        multi: bool,
        ttl_seconds: int | None,
    ) -> int:
        """Store a question; the ttl watchdog learns its deadline at once."""
        now = int(time.time())
        deadline = None if ttl_seconds is None else now + ttl_seconds
        limit = self.max_open_per_agent

        def insert(conn: Tx) -> int:
            # Counted in the same transaction as the insert: concurrent asks cannot pass it.
            if store.open_count(conn, asker) >= limit:
                raise LimitExceeded(
                    f"{asker} already has {limit} unanswered operator questions, the limit"
                    " (HYPERHIVE_MAX_OPEN_QUESTIONS_PER_AGENT). Nothing was queued: wait for"
                    " an operator_answered event, or put several questions into one"
                )
            return store.insert_question(
                conn,
                asker=asker,
                question=question,
                options=options,
                multi=multi,
                now=now,
                deadline_at=deadline,
            )

        question_id = await self._db.write(insert)
        self._changed.set()
        self._emit(question_id)
        return question_id

    async def answer(self, question_id: int, answer: str) -> bool:
        """Resolve with the operator's answer; False if it was already resolved."""
        if not answer.strip():
            raise InvalidRequest("the answer is empty: type an answer or cancel the question")
        return await self._resolve(question_id, answer)

    async def cancel(self, question_id: int) -> bool:
        """Resolve as [cancelled]."""
        return await self._resolve(question_id, CANCELLED)

    async def _resolve(self, question_id: int, answer: str) -> bool:
        now = int(time.time())

        def resolve(conn: Tx) -> tuple[QuestionInfo, int, str] | None:
            if store.find_question(conn, question_id) is None:
                raise NotFound(f"no operator question #{question_id}")
            info = store.resolve(conn, question_id, answer, now)
            if info is None:
                return None
            event = json.dumps(
                {
                    "event": "operator_answered",
                    "id": info.id,
                    "question": info.question,
                    "answer": info.answer,
                }
            )
            message_id = broker_store.insert_message(
                conn, sender=SYSTEM, recipient=info.asker, body=event, now=now
            )
            return info, message_id, event

        resolved = await self._db.write(resolve)
        if resolved is None:
            return False
        info, message_id, event = resolved
        self._broker.committed(message_id, SYSTEM, info.asker, event, now)
        self._emit(question_id)
        return True

    def list_open(self, limit: int | None = None) -> list[QuestionInfo]:
        """Unanswered questions, oldest first (the first `limit` of them)."""
        return self._db.read(partial(store.list_open, limit=limit))

    def count_open(self) -> int:
        """How many questions are unanswered."""
        return self._db.read(store.open_count)

    def count_open_before(self, question_id: int) -> int:
        """Unanswered questions older than `question_id`."""
        return self._db.read(lambda conn: store.open_before(conn, question_id))

    def _emit(self, question_id: int) -> None:
        info = self._db.read(lambda conn: store.find_question(conn, question_id))
        if info is not None:
            self._hub.publish("question", info.model_dump())

    async def watch_deadlines(self) -> None:
        """Expire questions at their deadline; sleeps until the next one, no polling."""
        while True:
            self._changed.clear()
            now = int(time.time())
            for question_id in self._db.read(partial(store.list_expired, now=now)):
                if await self._resolve(question_id, EXPIRED):
                    logger.info("operator question #%d expired", question_id)
            deadline = self._db.read(store.next_deadline)
            timeout = None if deadline is None else max(0.0, deadline - time.time())
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait()
            except TimeoutError:
                pass

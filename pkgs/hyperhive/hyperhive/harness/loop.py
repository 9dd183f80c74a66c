"""The turn loop (SPEC §7): recv a message, run one claude turn for it, ack on success.

Architecture Invariant: recv and ack go over ONE long-lived broker connection. The broker
redelivers whatever was delivered on a connection and not acked when it closes, so a
harness that dies mid-turn gets its message again on restart, and nothing else is needed
for at-least-once delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from hyperhive.errors import Unavailable
from hyperhive.harness.claude import Outcome, TurnResult
from hyperhive.harness.engine import SdkTurn, TurnSpec, hyperhive_server
from hyperhive.harness.events import EventBus
from hyperhive.harness.files import HiveFiles
from hyperhive.harness.model import ModelFile
from hyperhive.settings import HarnessSettings
from hyperhive.wire import requests as rq
from hyperhive.wire import responses as rs
from hyperhive.wire.client import DaemonError, SocketClient
from hyperhive.wire.roles import Role

logger = logging.getLogger(__name__)

RECONNECT_MAX_SECONDS = 2.0
# The reason a turn_failed notice carries is clipped to this many characters.
REASON_MAX = 500


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: in [d/2, d] where d = min(cap, base * 2**(n-1)).

    The jitter keeps agents that failed together (an API outage) from retrying together.
    """
    full = min(cap, base * 2.0 ** max(attempt - 1, 0))
    return full / 2 + random.uniform(0, full / 2)  # noqa: S311 — jitter, not a secret


def is_turn_failed_notice(body: str) -> bool:
    """Whether ``body`` is a turn_failed notice (never answered by another: no ping-pong)."""
    try:
        value = json.loads(body)
    except ValueError:
        return False
    return isinstance(value, dict) and value.get("event") == "turn_failed"


@dataclass(frozen=True)
class Verdict:
    """What to do with a message once its turns are over."""

    ack: bool
    # Set when the message failed for good: the reason, told to the sender.
    failure: str | None = None


class TurnState(StrEnum):
    """What the harness is doing right now (shown in the web UI)."""

    IDLE = "idle"
    THINKING = "thinking"
    COMPACTING = "compacting"


class Availability(StrEnum):
    """Whether the agent can take turns."""

    ONLINE = "online"
    RATE_LIMITED = "rate_limited"
    NEEDS_LOGIN = "needs_login"


def credentials_file(env: Mapping[str, str]) -> Path:
    """Where claude keeps its login: ``$CLAUDE_CONFIG_DIR`` or ``~/.claude``."""
    base = env.get("CLAUDE_CONFIG_DIR") or str(Path(env.get("HOME", "/root")) / ".claude")
    return Path(base) / ".credentials.json"


def has_credentials(env: Mapping[str, str]) -> bool:
    """An API key in the environment or a claude login on disk."""
    return bool(env.get("ANTHROPIC_API_KEY")) or credentials_file(env).is_file()


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def wake_prompt(item: rs.MessageItem, more: int) -> str:
    """The short prompt a turn starts with: who sent what, and what else is waiting."""
    head = f"New message #{item.id} from {item.sender}"
    if item.in_reply_to is not None:
        head += f" (in reply to #{item.in_reply_to})"
    lines = [head + ":", item.body]
    if item.broadcast:
        lines.append("(broadcast to every agent — it may need no action from you)")
    if item.redelivered:
        lines.append(
            "(redelivered: you may have started on this before a restart — check your notes)"
        )
    if more:
        lines.append(f"({more} more pending — drain with recv)")
    return "\n".join(lines)


def operator_prompt(body: str) -> str:
    """The prompt of a message the operator typed into this agent's web UI.

    It never went through the broker (the web UI holds only this agent's socket, and
    identity is the socket), so it has no message id and nothing to ack.
    """
    return (
        "Message from operator, typed into your web UI (it is not in your broker inbox;"
        ' answer with send(to="operator") if an answer is needed):\n' + body
    )


class TurnLoop:
    """Owns the broker connection, the running claude process and the agent's state."""

    def __init__(
        self,
        settings: HarnessSettings,
        files: HiveFiles,
        bus: EventBus,
        env: Mapping[str, str] | None = None,
        poll_seconds: float = 1.0,
        role: Role = Role.AGENT,
    ) -> None:
        self.settings = settings
        self.role = role
        self.files = files
        self.bus = bus
        base = dict(os.environ if env is None else env)
        # hyperhive owns compaction; a pinned CLI must not update itself.
        self.env = {**base, "DISABLE_AUTO_COMPACT": "1", "DISABLE_AUTOUPDATER": "1"}
        self.poll_seconds = poll_seconds
        self.model_file = ModelFile(settings.model_path, settings.default_model)
        self.state = TurnState.IDLE
        self.status = Availability.ONLINE
        self.since = time.time()
        self._process: SdkTurn | None = None
        # The hyperhive tools, served in-process to every turn's claude (built once).
        self._server = hyperhive_server(role, settings.socket)
        self._cancel_requested = False
        self._new_session = False
        self._login = asyncio.Event()
        # One claude at a time: broker messages and the web UI's operator messages and
        # /compact share the session (--continue), so their turns must not overlap.
        self._turns = asyncio.Lock()

    # -- controls (web UI) -------------------------------------------------------------
    def cancel(self) -> bool:
        """Interrupt the running turn (SDK interrupt, SIGINT as the fallback); False when idle."""
        if self._process is None:
            return False
        self._cancel_requested = True
        self._process.cancel()
        self.bus.publish("note", {"source": "harness", "text": "cancel requested (interrupt)"})
        return True

    def new_session(self) -> None:
        """Make the next turn start a fresh conversation (skip --continue once)."""
        self._new_session = True

    def logged_in(self) -> None:
        """Wake a harness parked in needs_login (the web UI's login flow finished)."""
        self._login.set()

    def read_model(self) -> str:
        """The model for the next turn: the model file if set and valid, else the default."""
        return self.model_file.read()

    # -- the loop ----------------------------------------------------------------------
    async def run(self) -> None:
        """Take turns forever: connect, recv, turn, ack; reconnect when the daemon goes."""
        self._set(TurnState.IDLE, Availability.ONLINE)
        if not has_credentials(self.env):
            await self._wait_for_login(baseline=None)
        while True:
            client = await self._connect()
            try:
                await self._serve(client)
            except (Unavailable, ConnectionError, asyncio.IncompleteReadError) as exc:
                logger.warning("lost the broker connection (%s); reconnecting", exc)
            except DaemonError as exc:
                # The daemon refused recv/status: back off instead of spinning.
                logger.error("the broker refused a request: %s; reconnecting", exc.message)
                await asyncio.sleep(RECONNECT_MAX_SECONDS)
            finally:
                await client.close()

    async def _connect(self) -> SocketClient:
        delay = 0.05
        while True:
            try:
                return await SocketClient.connect(self.settings.socket)
            except Unavailable as exc:
                logger.warning("%s; retrying in %.1f s", exc.message, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def _serve(self, client: SocketClient) -> None:
        while True:
            reply = await client.call(rq.Recv(wait_seconds=rq.MAX_WAIT_SECONDS, max=1))
            if not isinstance(reply, rs.Messages) or not reply.items:
                continue
            popped = time.perf_counter()
            status = await client.call(rq.Status())
            more = status.unread if isinstance(status, rs.StatusReply) else 0
            for item in reply.items:
                verdict = await self.handle(item, more, popped)
                if verdict.failure is not None:
                    await self._tell_sender(client, item, verdict.failure)
                if verdict.ack:
                    await self._ack(client, item.id)

    async def _tell_sender(self, client: SocketClient, item: rs.MessageItem, reason: str) -> None:
        """Send the sender a turn_failed notice, so a dropped message is never silent.

        It goes out as a message from this agent (an agent cannot write system messages:
        identity is the socket). A notice is never answered by a notice, so two agents
        whose turns both fail cannot bounce notices forever.
        """
        if is_turn_failed_notice(item.body):
            return
        body = json.dumps(
            {"event": "turn_failed", "message_id": item.id, "reason": reason[:REASON_MAX]}
        )
        try:
            await client.call(rq.Send(to=item.sender, body=body, in_reply_to=item.id))
        except DaemonError as exc:
            logger.warning("turn_failed notice to %s refused: %s", item.sender, exc.message)

    async def _ack(self, client: SocketClient, message_id: int) -> None:
        try:
            await client.call(rq.Ack(ids=[message_id]))
        except DaemonError as exc:
            # E.g. the daemon restarted mid-turn and already re-queued it: it comes back
            # as a redelivery, which is the at-least-once contract.
            logger.warning("ack of message %d refused: %s", message_id, exc.message)

    async def handle(self, item: rs.MessageItem, more: int, popped: float) -> Verdict:
        """Run turns for one message until it is done: whether to ack, and any failure."""
        return await self._run_message(wake_prompt(item, more), item.id, popped)

    async def handle_operator(self, body: str) -> bool:
        """Run turns for a message the operator typed into the web UI; True when it worked."""
        verdict = await self._run_message(operator_prompt(body), None, time.perf_counter())
        return verdict.ack and verdict.failure is None

    async def compact(self) -> bool:
        """Compact the session now, between turns (the web UI's /compact); True when it worked."""
        async with self._turns:
            return await self._compact("compacting on request")

    async def _run_message(self, prompt: str, message_id: int | None, popped: float) -> Verdict:
        waited = self._turns.locked()
        async with self._turns:
            if waited:
                popped = time.perf_counter()  # waiting for another turn is not spawn latency
            return await self._turns_for(prompt, message_id, popped)

    async def _turns_for(self, prompt: str, message_id: int | None, popped: float) -> Verdict:
        """Turns for one message until it succeeded, was cancelled or failed for good.

        Order over progress: while this message waits for a retry, later messages stay in
        the inbox (the loop takes one at a time). The wait is bounded by the retry settings.
        """
        compacted = False
        attempt = 0
        while True:
            result = await self._turn(prompt, message_id, popped)
            match result.outcome:
                case Outcome.OK | Outcome.CANCELLED:
                    # A cancel is the operator's decision about this message: not retried.
                    self._end(message_id, result, ok=result.outcome is Outcome.OK)
                    return Verdict(ack=True)
                case Outcome.PROMPT_TOO_LONG if not compacted:
                    self._end(message_id, result, ok=False)
                    compacted = True
                    if not await self._compact("prompt too long: compacting"):
                        return self._fail(message_id, f"compaction failed: {result.note}")
                case Outcome.RATE_LIMITED:
                    wait = result.retry_after or self.settings.rate_limit_sleep
                    self._end(message_id, result, ok=False, retry_in=wait)
                    self._set(status=Availability.RATE_LIMITED)
                    await asyncio.sleep(wait)
                    self._set(status=Availability.ONLINE)
                case Outcome.NEEDS_LOGIN:
                    self._end(message_id, result, ok=False)
                    await self._wait_for_login(baseline=_mtime(credentials_file(self.env)))
                case Outcome.TRANSIENT if attempt < self.settings.retry_attempts:
                    attempt += 1
                    wait = backoff_seconds(
                        attempt, self.settings.retry_base_seconds, self.settings.retry_max_seconds
                    )
                    self._end(message_id, result, ok=False, retry_in=wait)
                    self.bus.publish(
                        "note",
                        {
                            "source": "harness",
                            "text": f"transient failure; retry {attempt} of "
                            f"{self.settings.retry_attempts} in {wait:.1f} s",
                        },
                    )
                    await asyncio.sleep(wait)
                case Outcome.TRANSIENT:
                    self._end(message_id, result, ok=False)
                    return self._fail(
                        message_id, f"gave up after {attempt + 1} attempts: {result.note}"
                    )
                case _:
                    self._end(message_id, result, ok=False)
                    return self._fail(message_id, result.note)
            popped = time.perf_counter()  # a retry's spawn latency is measured from here

    def _fail(self, message_id: int | None, reason: str) -> Verdict:
        """A message that failed for good: ack it and say so (nothing is silently parked)."""
        self.bus.publish("turn_failed", {"message_id": message_id, "reason": reason[:REASON_MAX]})
        return Verdict(ack=True, failure=reason)

    def _end(
        self, message_id: int | None, result: TurnResult, *, ok: bool, retry_in: float | None = None
    ) -> None:
        payload: dict[str, object] = {
            "ok": ok,
            "note": result.note,
            "outcome": result.outcome.value,
            "message_id": message_id,
            "exit_code": result.exit_code,
        }
        if retry_in is not None:
            payload["retry_in"] = round(retry_in, 3)
        self.bus.publish("turn_end", payload)

    async def _turn(self, prompt: str, message_id: int | None, popped: float) -> TurnResult:
        resume = not self._new_session
        self._new_session = False
        flags = self._flags(resume)
        self._set(TurnState.THINKING)
        try:
            starting = time.perf_counter()
            process = await SdkTurn.start(flags, self._server, prompt, self.bus.publish)
            connect_ms = (time.perf_counter() - starting) * 1000
            # The harness's own share (SPEC §18): popped -> claude being spawned.
            spawn_ms = (starting - popped) * 1000
            self.bus.publish(
                "turn_start",
                {
                    "message_id": message_id,
                    "prompt": prompt,
                    "model": flags.model,
                    "resume": resume,
                    "pid": process.pid,
                    "popped_to_spawn_ms": round(spawn_ms, 3),
                    # Spawn, claude's start and the SDK's initialize handshake.
                    "connect_ms": round(connect_ms, 3),
                },
            )
            return await self._wait(process)
        except OSError as exc:
            note = f"cannot start {self.settings.claude_bin}: {exc} — check HYPERHIVE_CLAUDE_BIN"
            return TurnResult(Outcome.TRANSIENT, note, None)
        finally:
            self._set(TurnState.IDLE)

    def _flags(self, resume: bool) -> TurnSpec:
        # Model and system prompt are read per turn: both may change while we run.
        return TurnSpec(
            claude_bin=self.settings.claude_bin,
            model=self.read_model(),
            settings_file=self.files.settings,
            mcp_config_file=self.files.mcp_config,
            system_prompt=self.files.system_prompt_text(),
            allowed_tools=self.files.allowed_tools,
            cwd=self.settings.cwd,
            env=self.env,
            resume=resume,
        )

    async def _wait(self, process: SdkTurn) -> TurnResult:
        self._process = process
        self._cancel_requested = False
        try:
            result = await process.wait(
                result_grace=self.settings.result_grace_seconds,
                deadline=self.settings.turn_timeout_seconds,
            )
        finally:
            self._process = None
        if self._cancel_requested:
            self.bus.publish("note", {"source": "harness", "text": "turn cancelled"})
        return result

    async def _compact(self, why: str) -> bool:
        """Run /compact on the session once; True when it worked."""
        self.bus.publish("note", {"source": "harness", "text": why})
        flags = self._flags(resume=True)
        self._set(TurnState.COMPACTING)
        try:
            process = await SdkTurn.start(flags, self._server, "/compact", self.bus.publish)
            result = await self._wait(process)
        except OSError as exc:
            result = TurnResult(Outcome.FAILED, str(exc), None)
        finally:
            self._set(TurnState.IDLE)
        self.bus.publish("compacted", {"ok": result.outcome is Outcome.OK, "note": result.note})
        return result.outcome is Outcome.OK

    async def _wait_for_login(self, baseline: float | None) -> None:
        """Park in needs_login until claude's credentials file is (re)written."""
        self._set(status=Availability.NEEDS_LOGIN)
        self._login.clear()
        path = credentials_file(self.env)
        logger.warning("claude is not logged in: waiting for %s (log in via the web UI)", path)
        while True:
            current = _mtime(path)
            if self._login.is_set() or (current is not None and current != baseline):
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._login.wait()
        self._set(status=Availability.ONLINE)

    def _set(self, state: TurnState | None = None, status: Availability | None = None) -> None:
        self.state = state or self.state
        self.status = status or self.status
        self.since = time.time()
        self.bus.publish(
            "state", {"state": self.state.value, "status": self.status.value, "since": self.since}
        )

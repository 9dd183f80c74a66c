"""One claude process per turn: argv, stream-json parsing, outcome classification, cancel.

Facts about the pinned CLI (2.1.330) this relies on are recorded in docs/turn-loop.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from hyperhive.harness.roles import BUILTIN_TOOLS

logger = logging.getLogger(__name__)

JsonObj = dict[str, Any]
Publish = Callable[[str, JsonObj], object]

# stream-json lines carry whole tool results; the default 64 KiB line limit is too small.
LINE_LIMIT = 16 * 1024 * 1024
# After SIGINT claude flushes a result and exits within ~0.2 s; past this we kill it.
CANCEL_GRACE_SECONDS = 10.0
# After SIGTERM to the process group, how long before SIGKILL.
TERM_GRACE_SECONDS = 2.0
# After claude exits, how long its output pipes may stay open (a grandchild that escaped
# the process group may hold them) before we stop reading.
DRAIN_SECONDS = 2.0


class Outcome(StrEnum):
    """How a claude turn ended, as far as the turn loop cares."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"
    NEEDS_LOGIN = "needs_login"
    PROMPT_TOO_LONG = "prompt_too_long"
    CANCELLED = "cancelled"
    # Worth retrying the same message: overloaded, 5xx, connection errors, claude crashed.
    TRANSIENT = "transient"
    # Retrying will not help: a 4xx other than 401/429/too-long, or no result in time.
    FAILED = "failed"


@dataclass(frozen=True)
class TurnFlags:
    """Everything but the prompt that goes on claude's command line."""

    claude_bin: str
    model: str
    settings_file: Path
    mcp_config_file: Path
    system_prompt: str
    allowed_tools: Sequence[str]
    resume: bool = True


def build_argv(flags: TurnFlags) -> list[str]:
    """The argv of one turn. The prompt goes on stdin, never positionally.

    ``--tools``, ``--allowedTools`` and ``--mcp-config`` take lists and would swallow a
    trailing positional prompt. 2.1.330 has no ``--append-system-prompt-file``: the
    prompt file's text is passed as the argument of ``--append-system-prompt``.
    """
    argv = [
        flags.claude_bin,
        "--print",
        "--verbose",
        "--output-format",
        "stream-json",
        "--model",
        flags.model,
    ]
    if flags.resume:
        argv.append("--continue")
    argv += [
        "--settings",
        str(flags.settings_file),
        "--append-system-prompt",
        flags.system_prompt,
        "--mcp-config",
        str(flags.mcp_config_file),
        "--strict-mcp-config",
        # --tools limits the built-in set; with ToolSearch gone, MCP tools load directly.
        "--tools",
        ",".join(BUILTIN_TOOLS),
        "--allowedTools",
        ",".join(flags.allowed_tools),
    ]
    return argv


def compact_argv(flags: TurnFlags) -> list[str]:
    """The argv that runs ``/compact`` (sent on stdin) on the continued session."""
    return build_argv(dataclasses.replace(flags, resume=True))


@dataclass
class TurnResult:
    """What a finished claude process left behind."""

    outcome: Outcome
    note: str
    exit_code: int | None
    result: JsonObj | None = None
    # Seconds the API asked us to wait (retry-after, as claude's own retry reported it).
    retry_after: float | None = None


@dataclass
class _Observed:
    """What the stream told us, for classification."""

    result: JsonObj | None = None
    api_errors: list[str] = field(default_factory=list)
    stderr_tail: list[str] = field(default_factory=list)
    rate_limit_delay_ms: float | None = None


TRANSIENT_ERROR_TYPES = frozenset({"overloaded_error", "api_error", "timeout_error"})


def classify(
    result: JsonObj | None,
    api_errors: Sequence[str],
    exit_code: int | None,
    cancelled: bool,
    *,
    timed_out: bool = False,
) -> tuple[Outcome, str]:
    """Map claude's final ``result`` line (and ``assistant.error`` tags) to an outcome.

    ``is_error`` decides success; the fields and the text only say which error. Observed
    with 2.1.330: 429 → ``error: "rate_limit"``, ``api_error_status: 429``; 401 or no
    credentials → ``error: "authentication_failed"``; an over-long context →
    ``terminal_reason: "prompt_too_long"``; 529/500 → ``api_error_status`` 529/500 with
    ``api_error_type`` ``overloaded_error``/``api_error``; a crash or kill → no result line.
    """
    if cancelled:
        return Outcome.CANCELLED, "turn cancelled by the operator"
    if timed_out:
        return Outcome.FAILED, "no result before the turn deadline: claude was ended"
    if result is None:
        return Outcome.TRANSIENT, f"claude exited with code {exit_code} without a result line"
    text = str(result.get("result", ""))
    if not result.get("is_error"):
        return Outcome.OK, text
    status = result.get("api_error_status")
    status = status if isinstance(status, int) else None
    kind = result.get("api_error_type")
    if result.get("terminal_reason") == "prompt_too_long" or (
        status == 400 and text.lower().startswith("prompt is too long")
    ):
        return Outcome.PROMPT_TOO_LONG, text or "prompt is too long"
    if status == 429 or "rate_limit" in api_errors:
        return Outcome.RATE_LIMITED, text or "rate limited"
    if status == 401 or "authentication_failed" in api_errors:
        return Outcome.NEEDS_LOGIN, text or "not logged in"
    if status is not None and 400 <= status < 500 and status not in (408, 409):
        return Outcome.FAILED, text or f"the API refused the request ({status})"
    if status is not None or kind in TRANSIENT_ERROR_TYPES:
        return Outcome.TRANSIENT, text or f"API error {status}"
    # is_error without an API status: a connection error, max turns, an execution error.
    return Outcome.TRANSIENT, text or f"claude failed (exit code {exit_code})"


class ClaudeProcess:
    """A running claude turn: publishes its output, can be cancelled, yields a TurnResult."""

    def __init__(self, proc: asyncio.subprocess.Process, publish: Publish) -> None:
        self._proc = proc
        self._publish = publish
        self._cancelled = False
        self._seen = _Observed()
        self._result_seen = asyncio.Event()

    @property
    def pid(self) -> int:
        """The claude process id."""
        return self._proc.pid

    @classmethod
    async def start(
        cls,
        argv: Sequence[str],
        prompt: str,
        *,
        cwd: Path,
        env: Mapping[str, str],
        publish: Publish,
    ) -> ClaudeProcess:
        """Spawn claude with ``prompt`` on stdin (then closed)."""
        cwd.mkdir(parents=True, exist_ok=True)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            limit=LINE_LIMIT,
            # Its own process group: ending the turn ends claude's background tasks too.
            start_new_session=True,
        )
        assert proc.stdin is not None
        proc.stdin.write(prompt.encode())
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await proc.stdin.drain()
        proc.stdin.close()
        return cls(proc, publish)

    def cancel(self) -> None:
        """SIGINT claude: it aborts the request, flushes a result line and exits."""
        if self._proc.returncode is None:
            self._cancelled = True
            self._proc.send_signal(signal.SIGINT)

    async def wait(self, *, result_grace: float = 5.0, deadline: float | None = None) -> TurnResult:
        """Pump output into events until the turn is over; classify the outcome.

        The turn is over when claude exits, or ``result_grace`` seconds after its
        ``result`` line (claude waits for background tasks before exiting), or at
        ``deadline`` seconds without a result. Either way its process group is ended.
        """
        pumps = asyncio.gather(self._pump_stdout(), self._pump_stderr())
        exited = asyncio.ensure_future(self._proc.wait())
        timed_out = False
        try:
            result_seen = asyncio.ensure_future(self._result_seen.wait())
            try:
                await asyncio.wait(
                    {exited, result_seen}, timeout=deadline, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                result_seen.cancel()
            if not exited.done():
                if self._result_seen.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(exited), result_grace)
                    if not exited.done():
                        self._publish(
                            "note",
                            {
                                "source": "harness",
                                "text": f"claude still running {result_grace:g} s after its "
                                "result (background tasks?): ending its process group",
                            },
                        )
                else:
                    timed_out = True
                    self._publish(
                        "note",
                        {"source": "harness", "text": "turn deadline passed without a result"},
                    )
            code = await self._end_group(exited)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pumps), DRAIN_SECONDS)
        except asyncio.CancelledError:
            self.cancel()
            await self._end_group(exited, CANCEL_GRACE_SECONDS)
            raise
        finally:
            pumps.cancel()
            await asyncio.gather(pumps, return_exceptions=True)
        outcome, note = classify(
            self._seen.result, self._seen.api_errors, code, self._cancelled, timed_out=timed_out
        )
        if outcome in (Outcome.FAILED, Outcome.TRANSIENT) and self._seen.stderr_tail:
            note = f"{note}; stderr: {self._seen.stderr_tail[-1]}"
        delay = self._seen.rate_limit_delay_ms
        retry_after = delay / 1000 if delay is not None else None
        return TurnResult(outcome, note, code, self._seen.result, retry_after)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    async def _end_group(
        self, exited: asyncio.Future[int], grace: float = TERM_GRACE_SECONDS
    ) -> int:
        """End claude's process group (whatever is left of it); claude's exit code.

        When claude already exited this still sweeps the group: background tasks it left
        behind must not outlive the turn.
        """
        if not exited.done():
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(exited), grace)
        self._signal_group(signal.SIGKILL)
        return await exited

    async def _lines(self, stream: asyncio.StreamReader | None) -> Any:
        assert stream is not None
        while True:
            try:
                raw = await stream.readline()
            except ValueError:
                # A line over LINE_LIMIT: asyncio drops the buffer; say so, keep going.
                self._publish("note", {"source": "stdout", "text": "(a line over 16 MiB dropped)"})
                continue
            if not raw:
                return
            yield raw.decode("utf-8", errors="replace").rstrip("\n")

    async def _pump_stdout(self) -> None:
        async for line in self._lines(self._proc.stdout):
            if not line.strip():
                continue
            event = parse_stream_line(line)
            if event is None:
                self._publish("note", {"source": "stdout", "text": line})
                continue
            if event.get("type") == "result":
                self._seen.result = event
                self._result_seen.set()
            if (
                event.get("type") == "system"
                and event.get("subtype") == "api_retry"
                and event.get("error_status") == 429
                and isinstance(event.get("retry_delay_ms"), int | float)
            ):
                # claude's own retry honours retry-after; its delay is the API's hint.
                self._seen.rate_limit_delay_ms = float(event["retry_delay_ms"])
            error = event.get("error")
            if event.get("type") == "assistant" and isinstance(error, str):
                self._seen.api_errors.append(error)
            self._publish("stream", event)

    async def _pump_stderr(self) -> None:
        async for line in self._lines(self._proc.stderr):
            if not line.strip():
                continue
            self._seen.stderr_tail = [*self._seen.stderr_tail[-4:], line]
            self._publish("note", {"source": "stderr", "text": line})


def parse_stream_line(line: str) -> JsonObj | None:
    """One stream-json line as an object, or None when it is not a JSON object."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None

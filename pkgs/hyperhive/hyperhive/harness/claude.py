"""One claude process per turn: argv, stream-json parsing, outcome classification, cancel.

Facts about the pinned CLI (2.1.330) this relies on are recorded in docs/turn-loop.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
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


class Outcome(StrEnum):
    """How a claude turn ended, as far as the turn loop cares."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"
    NEEDS_LOGIN = "needs_login"
    PROMPT_TOO_LONG = "prompt_too_long"
    CANCELLED = "cancelled"
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


@dataclass
class _Observed:
    """What the stream told us, for classification."""

    result: JsonObj | None = None
    api_errors: list[str] = field(default_factory=list)
    stderr_tail: list[str] = field(default_factory=list)


def classify(
    result: JsonObj | None, api_errors: Sequence[str], exit_code: int | None, cancelled: bool
) -> tuple[Outcome, str]:
    """Map claude's final ``result`` line (and ``assistant.error`` tags) to an outcome.

    Observed with 2.1.330: a 429 gives ``error: "rate_limit"`` and ``api_error_status:
    429``; a 401 or no credentials give ``error: "authentication_failed"``; an over-long
    context gives ``terminal_reason: "prompt_too_long"`` (text "Prompt is too long ...").
    """
    text = str(result.get("result", "")) if result else ""
    if cancelled:
        return Outcome.CANCELLED, "turn cancelled by the operator"
    status = result.get("api_error_status") if result else None
    terminal = result.get("terminal_reason") if result else None
    if terminal == "prompt_too_long" or text.lower().startswith("prompt is too long"):
        return Outcome.PROMPT_TOO_LONG, text or "prompt is too long"
    if status == 429 or "rate_limit" in api_errors:
        return Outcome.RATE_LIMITED, text or "rate limited"
    if status == 401 or "authentication_failed" in api_errors:
        return Outcome.NEEDS_LOGIN, text or "not logged in"
    if result is not None and not result.get("is_error") and exit_code == 0:
        return Outcome.OK, text
    if result is None:
        return Outcome.FAILED, f"claude exited with code {exit_code} without a result line"
    return Outcome.FAILED, text or f"claude failed (exit code {exit_code})"


class ClaudeProcess:
    """A running claude turn: publishes its output, can be cancelled, yields a TurnResult."""

    def __init__(self, proc: asyncio.subprocess.Process, publish: Publish) -> None:
        self._proc = proc
        self._publish = publish
        self._cancelled = False
        self._seen = _Observed()

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

    async def wait(self) -> TurnResult:
        """Pump stdout/stderr into events until claude exits; classify the outcome."""
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._pump_stdout())
                tasks.create_task(self._pump_stderr())
            code = await self._proc.wait()
        except asyncio.CancelledError:
            await self._stop()
            raise
        outcome, note = classify(self._seen.result, self._seen.api_errors, code, self._cancelled)
        if outcome is Outcome.FAILED and self._seen.stderr_tail:
            note = f"{note}; stderr: {self._seen.stderr_tail[-1]}"
        return TurnResult(outcome, note, code, self._seen.result)

    async def _stop(self) -> None:
        """SIGINT, then SIGKILL after the grace period; used when the harness stops."""
        self.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(self._proc.wait()), CANCEL_GRACE_SECONDS)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()

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

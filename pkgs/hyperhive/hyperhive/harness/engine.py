"""One claude turn driven through the Claude Agent SDK, the hyperhive tools served in-process.

The SDK starts the pinned claude (``cli_path``; never the binary bundled in its wheel) in
stream-json input mode and routes the ``mcp__hyperhive__*`` tool calls back to this process
over claude's control channel, so no MCP server process starts per turn. The tools are the
very FastMCP server ``hive-ag3nt mcp`` serves on stdio (``mcp_server.tools.build_server``):
same names, same errors, one request on the agent's socket per call.

Facts this relies on (claude 2.1.330, claude-agent-sdk 0.2.184) are in docs/turn-loop.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient
from claude_agent_sdk.types import McpSdkServerConfig, McpServerConfig

from hyperhive.harness.claude import (
    CANCEL_GRACE_SECONDS,
    TERM_GRACE_SECONDS,
    JsonObj,
    Outcome,
    Publish,
    TurnResult,
    classify,
)
from hyperhive.mcp_server.roles import BUILTIN_TOOLS, MCP_SERVER_NAME
from hyperhive.wire.roles import Role

logger = logging.getLogger(__name__)

# How long the SDK's initialize handshake with a fresh claude may take.
CONNECT_SECONDS = 60.0
# How long an interrupt control request may take before SIGINT is the fallback.
INTERRUPT_SECONDS = 5.0


class _StdoutNotes(logging.Filter):
    """Turns the SDK's "Skipping non-JSON line from CLI stdout" into ``note`` events.

    The SDK reads claude's stdout itself and only logs lines that are not JSON (at debug
    level); SPEC §7 keeps them as notes. Installed once on the SDK transport's logger; the
    turn loop runs one turn at a time, so the current turn's publish is the one to use.
    """

    PREFIX = "Skipping non-JSON line from CLI stdout"

    def __init__(self) -> None:
        super().__init__()
        self.publish: Publish | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.DEBUG and str(record.msg).startswith(self.PREFIX):
            if self.publish is not None and record.args:
                args = record.args if isinstance(record.args, tuple) else (record.args,)
                self.publish("note", {"source": "stdout", "text": str(args[0])})
            return False
        # The logger is set to DEBUG for the above; keep everything else as it was.
        return record.levelno >= logging.getLogger().getEffectiveLevel()


_stdout_notes = _StdoutNotes()
_sdk_transport_logger = logging.getLogger("claude_agent_sdk._internal.transport.subprocess_cli")
_sdk_transport_logger.addFilter(_stdout_notes)
_sdk_transport_logger.setLevel(logging.DEBUG)


def hyperhive_server(role: Role, socket: Path) -> McpSdkServerConfig:
    """The hyperhive tools as an in-process SDK MCP server (built once per harness)."""
    from hyperhive.mcp_server.tools import build_server  # FastMCP: ~0.7 s, once

    # The SDK serves any ``mcp.server.Server`` over claude's control channel; FastMCP's
    # low-level server is that, with the tools, their schemas and ToolError handling.
    return {
        "type": "sdk",
        "name": MCP_SERVER_NAME,
        "instance": build_server(role, socket)._mcp_server,
    }


def extra_servers(mcp_config_file: Path) -> dict[str, McpServerConfig]:
    """The operator's extra MCP servers from the generated config (``hyperhive`` excluded)."""
    try:
        config = json.loads(mcp_config_file.read_text())
    except (OSError, ValueError):
        return {}
    servers = config.get("mcpServers") if isinstance(config, dict) else None
    if not isinstance(servers, dict):
        return {}
    # The file is ours (files.py writes {command, args, env} stdio entries): passed as is.
    return {
        k: cast(McpServerConfig, v)
        for k, v in servers.items()
        if k != MCP_SERVER_NAME and isinstance(v, dict)
    }


@dataclass(frozen=True)
class TurnSpec:
    """Everything but the prompt that a turn's claude is started with."""

    claude_bin: str
    model: str
    settings_file: Path
    mcp_config_file: Path
    system_prompt: str
    allowed_tools: Sequence[str]
    cwd: Path
    env: Mapping[str, str]
    resume: bool = True


def build_options(
    spec: TurnSpec, server: McpSdkServerConfig, stderr: Any = None
) -> ClaudeAgentOptions:
    """The SDK options of one turn: the flags SPEC §7 names, the tools in-process."""
    return ClaudeAgentOptions(
        cli_path=spec.claude_bin,
        model=spec.model,
        continue_conversation=spec.resume,
        settings=str(spec.settings_file),
        # Append keeps claude's own tool instructions (as --append-system-prompt).
        system_prompt={"type": "preset", "preset": "claude_code", "append": spec.system_prompt},
        # --tools limits the built-in set; with ToolSearch gone, MCP tools load directly.
        tools=list(BUILTIN_TOOLS),
        allowed_tools=list(spec.allowed_tools),
        mcp_servers={MCP_SERVER_NAME: server, **extra_servers(spec.mcp_config_file)},
        strict_mcp_config=True,
        cwd=spec.cwd,
        env=dict(spec.env),
        stderr=stderr,
    )


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (by /proc parent links), deepest last."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal(pids: Sequence[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


class SdkTurn:
    """A running turn: publishes claude's messages, can be cancelled, yields a TurnResult."""

    def __init__(self, client: ClaudeSDKClient, publish: Publish, pid: int) -> None:
        self._client = client
        self._publish = publish
        self.pid = pid
        self._cancelled = False
        self._result: JsonObj | None = None
        self._api_errors: list[str] = []
        self._stderr_tail: list[str] = []
        self._rate_limit_delay_ms: float | None = None
        self._error: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def start(
        cls, spec: TurnSpec, server: McpSdkServerConfig, prompt: str, publish: Publish
    ) -> SdkTurn:
        """Start claude, hand it the hyperhive tools and the prompt. OSError when it cannot."""
        spec.cwd.mkdir(parents=True, exist_ok=True)
        holder: list[SdkTurn] = []

        def on_stderr(line: str) -> None:
            if holder:
                holder[0]._stderr_tail = [*holder[0]._stderr_tail[-4:], line]
            publish("note", {"source": "stderr", "text": line})

        _stdout_notes.publish = publish
        client = ClaudeSDKClient(build_options(spec, server, on_stderr))
        try:
            async with asyncio.timeout(CONNECT_SECONDS):
                await client.connect()
            await client.query(prompt)
        except Exception as exc:
            with contextlib.suppress(Exception):
                await client.disconnect()
            raise OSError(f"cannot start claude through the SDK: {exc}") from exc
        except BaseException:  # cancelled (the harness stops): no claude left behind
            with contextlib.suppress(Exception):
                await asyncio.shield(client.disconnect())
            raise
        turn = cls(client, publish, _pid_of(client))
        holder.append(turn)
        return turn

    def cancel(self) -> None:
        """Interrupt the turn through the SDK; SIGINT to claude if that does not answer."""
        self._cancelled = True
        task = asyncio.get_running_loop().create_task(self._interrupt())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _interrupt(self) -> None:
        try:
            async with asyncio.timeout(INTERRUPT_SECONDS):
                await self._client.interrupt()
        except Exception as exc:  # noqa: BLE001 — any failure means: fall back to the signal
            logger.warning("SDK interrupt failed (%s); sending SIGINT", exc)
            _signal([self.pid], signal.SIGINT)

    async def wait(self, *, result_grace: float = 5.0, deadline: float | None = None) -> TurnResult:
        """Publish messages until the turn's ``result`` (or claude's end, or ``deadline``).

        Then end claude: stdin closed through the SDK and, ``result_grace`` seconds on,
        claude and every process it started (background tasks) are terminated, then killed.
        """
        pump = asyncio.ensure_future(self._pump())
        timed_out = False
        try:
            done, _ = await asyncio.wait({pump}, timeout=deadline)
            if not done:
                timed_out = True
                self._publish(
                    "note", {"source": "harness", "text": "turn deadline passed without a result"}
                )
                pump.cancel()
            code = await self._end(result_grace)
        except asyncio.CancelledError:
            pump.cancel()
            self._cancelled = True
            await self._end(CANCEL_GRACE_SECONDS)
            raise
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
        outcome, note = classify(
            self._result, self._api_errors, code, self._cancelled, timed_out=timed_out
        )
        if outcome in (Outcome.FAILED, Outcome.TRANSIENT):
            extra = self._error or (self._stderr_tail[-1] if self._stderr_tail else None)
            if extra:
                note = f"{note}; {extra}"
        delay = self._rate_limit_delay_ms
        retry_after = delay / 1000 if delay is not None else None
        return TurnResult(outcome, note, code, self._result, retry_after)

    async def _pump(self) -> None:
        """Raw messages from the SDK's reader (the stream-json objects) onto the bus."""
        query = self._client._query
        if query is None:
            return
        try:
            async for event in query.receive_messages():
                self._observe(event)
                self._publish("stream", event)
                if event.get("type") == "result":
                    return
        except Exception as exc:  # noqa: BLE001 — claude died: the turn has no result
            self._error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__

    def _observe(self, event: JsonObj) -> None:
        kind = event.get("type")
        if kind == "result":
            self._result = event
        error = event.get("error")
        if kind == "assistant" and isinstance(error, str):
            self._api_errors.append(error)
        if (
            kind == "system"
            and event.get("subtype") == "api_retry"
            and event.get("error_status") == 429
            and isinstance(event.get("retry_delay_ms"), int | float)
        ):
            # claude's own retry honours retry-after; its delay is the API's hint.
            self._rate_limit_delay_ms = float(event["retry_delay_ms"])

    async def _end(self, grace: float) -> int | None:
        """End claude and whatever it started; claude's exit code."""
        process = getattr(getattr(self._client, "_transport", None), "_process", None)
        left_behind = descendants(self.pid)
        closing = asyncio.ensure_future(self._client.disconnect())
        try:
            async with asyncio.timeout(grace):
                await asyncio.shield(closing)
        except TimeoutError:
            self._publish(
                "note",
                {
                    "source": "harness",
                    "text": f"claude still running {grace:g} s after its result "
                    "(background tasks?): ending it and its processes",
                },
            )
        except Exception as exc:  # noqa: BLE001 — a failed close still gets the kill below
            logger.warning("SDK disconnect failed: %s", exc)
        left_behind = sorted({*left_behind, *descendants(self.pid)})
        if not closing.done():
            _signal([self.pid, *left_behind], signal.SIGTERM)
            with contextlib.suppress(TimeoutError, Exception):
                async with asyncio.timeout(TERM_GRACE_SECONDS):
                    await asyncio.shield(closing)
        # claude's own pid only while it is unreaped (it cannot have been reused then).
        _signal(left_behind if closing.done() else [self.pid, *left_behind], signal.SIGKILL)
        with contextlib.suppress(Exception):
            await closing
        code = getattr(process, "returncode", None)
        return code if isinstance(code, int) else None


def _pid_of(client: ClaudeSDKClient) -> int:
    process = getattr(getattr(client, "_transport", None), "_process", None)
    pid = getattr(process, "pid", None)
    if not isinstance(pid, int):
        raise OSError("the SDK started no claude process")
    return pid

"""The web UI's login flow: run ``claude auth login`` on pipes, find its URL, feed it the code.

Observed with claude 2.1.330 on pipes (no browser): it prints ``Opening browser to sign
in…``, ``If the browser didn't open, visit:``, the authorize URL on a line of its own, then
the prompt ``Paste code here if prompted > `` *without* a newline, and reads the code from
stdin. So output is read in chunks, not lines.

The pasted code is a credential: it goes to the process's stdin and nowhere else (no log,
no event, no error message).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from hyperhive.errors import Conflict, InvalidRequest
from hyperhive.harness.loop import credentials_file, has_credentials

logger = logging.getLogger(__name__)

URL_RE = re.compile(r"https?://[^\s\"'<>]+")
ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
# A login nobody finishes is stopped, so a forgotten flow does not hold a process forever.
LOGIN_DEADLINE_SECONDS = 15 * 60
MAX_CODE = 4096
OUTPUT_TAIL = 20

Publish = Callable[[str, dict[str, Any]], object]


class LoginPhase(StrEnum):
    """Where the login flow is."""

    IDLE = "idle"
    STARTING = "starting"  # the command runs, no URL seen yet
    WAITING_CODE = "waiting_code"  # the URL is shown, waiting for the pasted code
    VERIFYING = "verifying"  # the code was written, waiting for the command to finish
    DONE = "done"
    FAILED = "failed"


@dataclass
class LoginView:
    """What the web UI shows of the flow (never the code)."""

    phase: LoginPhase = LoginPhase.IDLE
    url: str | None = None
    note: str = ""
    output: list[str] = field(default_factory=list)
    since: float = field(default_factory=time.time)

    def as_json(self) -> dict[str, Any]:
        """The JSON shape of ``/api/state``'s ``login``."""
        return {
            "phase": self.phase.value,
            "url": self.url,
            "note": self.note,
            "output": self.output,
            "since": self.since,
        }


class LoginRunner:
    """At most one login process at a time; publishes ``login`` events on phase changes."""

    def __init__(
        self,
        command: str,
        env: Mapping[str, str],
        publish: Publish,
        on_logged_in: Callable[[], None],
        claude_bin: str = "claude",
    ) -> None:
        self._command = command
        self._claude_bin = claude_bin
        self._env = env
        self._publish = publish
        self._on_logged_in = on_logged_in
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._text = ""
        self.view = LoginView()

    @property
    def running(self) -> bool:
        """Whether a login process is alive."""
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> LoginView:
        """Start the login command (or keep the running one); the view right after."""
        if self.running:
            return self.view
        try:
            argv = shlex.split(self._command)
        except ValueError as exc:
            raise InvalidRequest(
                f"HYPERHIVE_LOGIN_CMD cannot be parsed ({exc}): fix the command and restart"
            ) from exc
        if not argv:
            raise InvalidRequest("HYPERHIVE_LOGIN_CMD is empty: set it (e.g. claude auth login)")
        if argv[0] == "claude":
            # The same CLI the turns run (HYPERHIVE_CLAUDE_BIN), which need not be on PATH.
            argv[0] = self._claude_bin
        self._text = ""
        self.view = LoginView()
        self._set(LoginPhase.STARTING, note=f"running {Path(argv[0]).name}")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=dict(self._env),
            )
        except OSError as exc:
            self._set(LoginPhase.FAILED, note=f"cannot start {argv[0]}: {exc.strerror or exc}")
            return self.view
        self._task = asyncio.create_task(self._watch(self._proc), name="login")
        return self.view

    async def submit_code(self, code: str) -> LoginView:
        """Write the pasted code to the login command's stdin."""
        code = code.strip()
        if not code:
            raise InvalidRequest("the code is empty: paste the code the login page showed")
        if len(code) > MAX_CODE or any(c in code for c in "\r\n"):
            raise InvalidRequest("that does not look like a login code: paste only the code")
        proc = self._proc
        if proc is None or proc.returncode is not None or proc.stdin is None:
            raise Conflict("no login is running: start the login first")
        proc.stdin.write(code.encode() + b"\n")
        try:
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise Conflict("the login command stopped reading: start the login again") from exc
        self._set(LoginPhase.VERIFYING, note="code sent, waiting for the login to finish")
        return self.view

    async def close(self) -> None:
        """Stop a running login process."""
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        try:
            async with asyncio.timeout(LOGIN_DEADLINE_SECONDS):
                await self._pump(proc)
            code = await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            self._set(LoginPhase.FAILED, note="the login was not finished in 15 min: start again")
            return
        if has_credentials(self._env):
            self._set(LoginPhase.DONE, note="logged in")
            self._on_logged_in()
        elif code == 0:
            path = credentials_file(self._env)
            self._set(
                LoginPhase.FAILED,
                note=f"the login command finished but no credentials appeared at {path}:"
                " start the login again",
            )
        else:
            last = self.view.output[-1] if self.view.output else ""
            self._set(
                LoginPhase.FAILED,
                note=f"the login command exited with code {code}"
                + (f" ({last})" if last else "")
                + ": start the login again",
            )

    async def _pump(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(4096):
            self._text = (self._text + ANSI_RE.sub("", chunk.decode(errors="replace")))[-16384:]
            lines = [ln.rstrip() for ln in self._text.replace("\r", "\n").split("\n")]
            self.view.output = [ln for ln in lines if ln.strip()][-OUTPUT_TAIL:]
            found = URL_RE.search(self._text) if self.view.url is None else None
            # The URL is complete once the line it is on has ended.
            if found and "\n" in self._text[found.end() :]:
                self.view.url = found.group(0)
                self._set(LoginPhase.WAITING_CODE, note="open the URL, then paste the code")

    def _set(self, phase: LoginPhase, *, note: str) -> None:
        self.view.phase = phase
        self.view.note = note
        self.view.since = time.time()
        logger.info("login: %s (%s)", phase.value, note)
        self._publish("login", {"phase": phase.value, "url": self.view.url, "note": note})

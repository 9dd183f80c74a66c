"""The harness's own log for the web UI: its systemd unit's journal, or its stderr file.

In a container the harness is the systemd unit ``hive-ag3nt`` (``hive-m1nd`` for the
manager) and logs to the journal. On the local backend the daemon points the harness's
stderr at a log file; that file is what "own log" means there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hyperhive.logtail import tail_file
from hyperhive.wire.roles import Role

MAX_LINES = 2000
JOURNALCTL_DEADLINE_SECONDS = 10.0
UNITS = {Role.AGENT: "hive-ag3nt", Role.MANAGER: "hive-m1nd"}


@dataclass(frozen=True)
class JournalTail:
    """The last lines of the log and where they came from."""

    source: str
    lines: list[str]


def stderr_file() -> Path | None:
    """The regular file this process's stderr writes to, if it is one."""
    try:
        target = Path(os.readlink("/proc/self/fd/2"))
    except OSError:
        return None
    return target if target.is_file() else None


async def read_journal(role: Role, lines: int, env: Mapping[str, str] | None = None) -> JournalTail:
    """The last ``lines`` (1..2000) lines of this harness's own log."""
    lines = max(1, min(lines, MAX_LINES))
    environ = os.environ if env is None else env
    if environ.get("INVOCATION_ID"):  # started by systemd: the unit's journal is the log
        unit = UNITS[role]
        return JournalTail(f"journalctl -u {unit}", await _journalctl(unit, lines))
    path = stderr_file()
    if path is not None:
        return JournalTail(str(path), tail_file(path, lines))
    return JournalTail("none", ["(the harness's stderr is not a file and it is not under systemd)"])


async def _journalctl(unit: str, lines: int) -> list[str]:
    argv = ["journalctl", "-u", unit, "-n", str(lines), "--no-pager", "-o", "short-iso"]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
    except OSError as exc:
        return [f"cannot run journalctl: {exc.strerror or exc}"]
    try:
        async with asyncio.timeout(JOURNALCTL_DEADLINE_SECONDS):
            out, _ = await proc.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return ["journalctl did not answer within 10 s"]
    return out.decode(errors="replace").splitlines()[-lines:]

"""Child processes the daemon supervises itself (local harnesses, nspawn containers).

Each process has a pidfile in the daemon's own per-agent directory (``AgentPaths.host``,
never in a tree a container can write), so a restarted daemon finds what its predecessor
left running (it was killed, or the operator restarted it) and adopts it instead of
starting a second copy. Pidfile and log are opened without following links (`safefs`),
and a pid is adopted only if it names a live process of ours in the daemon's own pid
namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hyperhive import safefs

logger = logging.getLogger(__name__)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name; Z is a zombie, X dead.
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _same_pid_namespace(pid: int) -> bool:
    # A process inside a container (its own pid namespace) can forge any argv.
    try:
        return os.readlink(f"/proc/{pid}/ns/pid") == os.readlink("/proc/self/ns/pid")
    except OSError:
        return False


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` (from /proc)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _forget(pidfile: Path) -> None:
    with contextlib.suppress(OSError, safefs.UnsafePath):
        safefs.unlink(pidfile.parent, pidfile)


@dataclass
class Supervised:
    """One supervised process: our child, or one adopted from a previous daemon."""

    pid: int
    pidfile: Path
    proc: asyncio.subprocess.Process | None = None

    def running(self) -> bool:
        """Whether it still runs."""
        if self.proc is not None:
            return self.proc.returncode is None
        return _alive(self.pid)

    @property
    def returncode(self) -> int | None:
        """Exit code when it was our child and has exited."""
        return None if self.proc is None else self.proc.returncode


class Supervisor:
    """Start, adopt, stop and watch processes by key (the agent's name)."""

    def __init__(self, marker: str, stop_timeout: float, *, term_twice: bool = False) -> None:
        # A string every supervised argv contains: a stale pidfile whose pid now belongs
        # to an unrelated process is never adopted (or signalled).
        self._marker = marker
        self._stop_timeout = stop_timeout
        # systemd-nspawn: a second SIGTERM terminates the container immediately.
        self._term_twice = term_twice
        self._procs: dict[str, Supervised] = {}

    def adopt(self, key: str, pidfile: Path, match: str) -> bool:
        """Take over a process a previous daemon started; True if one was running."""
        if key in self._procs and self._procs[key].running():
            return True
        try:
            raw = safefs.read_bytes(pidfile.parent, pidfile, 64)
            pid = int((raw or b"").split()[0])
        except (OSError, ValueError, IndexError, safefs.UnsafePath):
            return False
        argv = _cmdline(pid)
        ours = any(self._marker in a for a in argv) and any(match in a for a in argv)
        if pid > 1 and _alive(pid) and ours and _same_pid_namespace(pid):
            self._procs[key] = Supervised(pid, pidfile)
            logger.info("adopted %s (pid %d) from a previous daemon", key, pid)
            return True
        _forget(pidfile)
        return False

    async def start(
        self,
        key: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log: Path,
        pidfile: Path,
        cwd: Path | None = None,
    ) -> Supervised:
        """Start `argv` (unless it runs already) with output appended to `log`.

        `log` and `pidfile` must be in a directory only the daemon can write (it is
        trusted; the files themselves are opened with O_NOFOLLOW all the same).
        """
        current = self._procs.get(key)
        if current is not None and current.running():
            return current
        with os.fdopen(safefs.open_append(log.parent, log), "ab") as out:
            out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {key}\n".encode())
            out.flush()
            # Own session: a stop can signal the whole group (claude and its MCP server).
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=dict(env),
                cwd=str(cwd) if cwd else None,
                start_new_session=True,
            )
        safefs.write_atomic(pidfile.parent, pidfile, f"{proc.pid}\n".encode(), 0o600)
        supervised = Supervised(proc.pid, pidfile, proc)
        self._procs[key] = supervised
        return supervised

    def running(self, key: str) -> bool:
        """Whether the process of `key` runs."""
        current = self._procs.get(key)
        return current is not None and current.running()

    def get(self, key: str) -> Supervised | None:
        """The process of `key`, if any."""
        return self._procs.get(key)

    async def stop(self, key: str) -> None:
        """SIGTERM, wait, then SIGKILL the group; forget the process."""
        current = self._procs.pop(key, None)
        if current is None:
            return
        if current.running():
            await self._terminate(current)
        _forget(current.pidfile)

    async def _terminate(self, current: Supervised) -> None:
        pid = current.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if await self._wait(current, self._stop_timeout):
            return
        if self._term_twice:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if await self._wait(current, 2):
                return
        logger.warning("pid %d ignored SIGTERM for %.0f s; killing it", pid, self._stop_timeout)
        for child in children_of(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        await self._wait(current, 5)

    @staticmethod
    async def _wait(current: Supervised, seconds: float) -> bool:
        if current.proc is not None:
            try:
                async with asyncio.timeout(seconds):
                    await current.proc.wait()
            except TimeoutError:
                return False
            return True
        deadline = time.monotonic() + seconds
        while _alive(current.pid):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def close(self) -> None:
        """Stop every process (daemon shutdown)."""
        await asyncio.gather(*(self.stop(key) for key in list(self._procs)))

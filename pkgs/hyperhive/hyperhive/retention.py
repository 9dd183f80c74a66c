"""The hourly sweep: broker retention and events_vacuum over every agent (SPEC §13).

events_vacuum lives on the host, not in the harness, so that a broken harness cannot
disable its own cleanup. Each agent's events db is the agent's file and treated as
hostile (docs/security.md, "Hostile events databases"): every file is trimmed by its own
worker process (`hyperhive.events_worker`) confined to the agent's state directory, with
a time budget; the daemon kills a worker that outlives it, and a shutdown kills the
running one at once, so no file can stall the sweep or the daemon's exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from typing import TYPE_CHECKING

from hyperhive.agents.names import NAME_RE
from hyperhive.settings import Settings

if TYPE_CHECKING:
    from hyperhive.broker.service import Broker

logger = logging.getLogger(__name__)

# Seconds a worker may live past its own budget before it is killed (interpreter start).
KILL_GRACE_SECONDS = 10.0
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_state_dir(agents_fd: int, name: str) -> int:
    """An fd of agents/<name>/state, no component followed if it is a symlink."""
    agent_fd = os.open(name, _DIR_FLAGS, dir_fd=agents_fd)
    try:
        return os.open("state", _DIR_FLAGS, dir_fd=agent_fd)
    finally:
        os.close(agent_fd)


async def vacuum_agent(settings: Settings, state_fd: int, now: float) -> dict[str, object]:
    """Run the worker on the state directory `state_fd`; its JSON result or a skip reason."""
    budget = settings.events_vacuum_seconds
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hyperhive.events_worker",
        str(state_fd), str(settings.events_keep_days), str(settings.events_keep_rows),
        repr(now), repr(budget),
        pass_fds=(state_fd,),
        # The daemon's own import path: a wrapped install (Nix) puts hyperhive on
        # sys.path from its entry script, which the bare interpreter would not know.
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(budget + KILL_GRACE_SECONDS):
            out, err = await proc.communicate()
    except TimeoutError:
        return {"skipped": f"the worker outlived its {budget:g} s budget and was killed"}
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            # Reaped even if this task is cancelled meanwhile; a cancel is never swallowed
            # here (it would leave the sweep running through a shutdown).
            await asyncio.shield(proc.wait())
    try:
        result = json.loads(out.decode(errors="replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return {"skipped": f"the worker failed (exit {proc.returncode}): {tail[0][:200]!r}"}
    return result if isinstance(result, dict) else {"skipped": "the worker said nothing"}


async def events_vacuum(settings: Settings) -> int:
    """Sweep every agent's events db; a broken or hostile file is logged and skipped."""
    total = 0
    now = time.time()
    agents = settings.state_dir / "agents"
    try:
        agents_fd = os.open(agents, _DIR_FLAGS)
    except FileNotFoundError:
        return 0
    try:
        for name in sorted(os.listdir(agents_fd)):
            if not NAME_RE.fullmatch(name):
                continue  # not an agent the daemon made; never joined into a path
            try:
                state_fd = _open_state_dir(agents_fd, name)
            except FileNotFoundError:
                continue
            except OSError as exc:
                logger.warning("events_vacuum skipped %s: state is not a directory (%s)",
                               name, exc.strerror)  # fmt: skip
                continue
            try:
                result = await vacuum_agent(settings, state_fd, now)
            finally:
                os.close(state_fd)
            deleted = result.get("deleted")
            if isinstance(deleted, int):
                total += deleted
            else:
                logger.warning("events_vacuum skipped %s: %s", name, result.get("skipped"))
    finally:
        os.close(agents_fd)
    return total


async def sweep_forever(settings: Settings, broker: Broker) -> None:
    """Run retention and events_vacuum now and then every sweep interval."""
    while True:
        try:
            deleted = await broker.delete_old(settings.retention_days)
            vacuumed = await events_vacuum(settings)
            logger.info("sweep: %d old messages, %d old events deleted", deleted, vacuumed)
        except Exception:
            logger.exception("retention sweep failed; trying again next interval")
        await asyncio.sleep(settings.sweep_interval_seconds)

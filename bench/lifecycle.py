"""Benchmark: nspawn backend, spawn → agent online (SPEC §18 target: ≤ 1 s).

Runs a real in-process daemon on the nspawn backend (systemd-nspawn, volatile root over
the host's /usr) and spawns N agents one after another. "Online" is the moment the
harness inside the container has popped its boot kick from the broker (its first recv
answered): the container is up, the harness booted, connected through the bind-mounted
socket and took a message. The harness has a dummy API key and ``/bin/true`` as claude,
so no model is involved. Each agent is destroyed and purged afterwards. Prints numbers;
asserts nothing. Needs root and systemd-nspawn.

    python bench/lifecycle.py [--runs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hivetest import running_hive
from hyperhive.daemon import Hive
from hyperhive.settings import BackendKind

TARGET_MS = 1000.0


async def online_ms(hive: Hive, name: str) -> tuple[float, float]:
    """(spawn call returned, kick popped by the harness), in ms from the spawn call."""
    start = time.perf_counter()
    await hive.lifecycle.spawn(name)
    returned = time.perf_counter()
    deadline = returned + 30
    while time.perf_counter() < deadline:
        if any(r.sender == "system" and r.delivered for r in hive.broker.recent(name, 10)):
            break
        await asyncio.sleep(0.002)
    else:
        raise TimeoutError(f"{name} did not come online within 30 s")
    online = time.perf_counter()
    return (returned - start) * 1000, (online - start) * 1000


async def main(runs: int) -> None:
    if shutil.which("systemd-nspawn") is None or os.geteuid() != 0:
        print("bench/lifecycle.py needs root and systemd-nspawn (Debian systemd-container)")
        return
    os.environ.update(ANTHROPIC_API_KEY="bench-not-a-key", HYPERHIVE_CLAUDE_BIN="/bin/true")
    root = Path(tempfile.mkdtemp(prefix="hh-bench-life-"))
    try:
        async with running_hive(root, backend=BackendKind.NSPAWN, crash_watch_seconds=3600) as hive:
            returned: list[float] = []
            online: list[float] = []
            for i in range(runs):
                name = f"bench{i}"
                spawn_ms, online_at = await online_ms(hive, name)
                returned.append(spawn_ms)
                online.append(online_at)
                await hive.lifecycle.destroy(name, purge=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    median = statistics.median(online)
    print(f"nspawn backend, {runs} spawns (SPEC §18 target: spawn -> online <= {TARGET_MS:.0f} ms)")
    print(
        f"  spawn call returned: median {statistics.median(returned):7.1f} ms"
        f"  min {min(returned):7.1f}  max {max(returned):7.1f}"
        "  (template copy, 2 git repos, agent.nix check, nspawn started)"
    )
    print(
        f"  harness online:      median {median:7.1f} ms"
        f"  min {min(online):7.1f}  max {max(online):7.1f}"
    )
    verdict = "meets" if median <= TARGET_MS else "misses"
    print(f"  -> median {verdict} the target")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    asyncio.run(main(parser.parse_args().runs))

"""Benchmark: message popped → claude process started (SPEC §18 target: ≤ 30 ms).

Runs a real in-process daemon, one harness turn loop and the real claude CLI against the
API stand-in (from tests/), sends N messages one after another and reads the
``popped_to_spawn_ms`` the harness records in each ``turn_start`` event: the time from
``recv`` returning the message to ``create_subprocess_exec`` returning for claude. That
covers the status call, the wake prompt, reading the model file and the system prompt,
building the argv and spawning. Prints numbers; asserts nothing.

    HYPERHIVE_TEST_CLAUDE=<path to claude> python bench/harness.py [--turns 50]
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
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness.support import harness_settings, running_harness, spawn_quiet
from hivetest import call, running_hive
from hyperhive.harness.events import Event
from standin.api import StandIn, Text

TARGET_MS = 30.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def for_message(mid: int) -> Callable[[Event], bool]:
    return lambda e: e.payload["message_id"] == mid


async def bench(turns: int, claude_bin: Path, standin: StandIn, root: Path) -> None:
    async with running_hive(root / "hive") as hive:
        host = hive.settings.host_socket
        sock = hive.settings.run_dir / "agents" / "bench" / "mcp.sock"
        await spawn_quiet(host, sock, "bench")
        settings = harness_settings(root / "bench", "bench", sock, claude_bin)
        async with running_harness(
            root / "bench", "bench", sock, claude_bin, standin, settings
        ) as run:
            spawn_ms: list[float] = []
            turn_s: list[float] = []
            for i in range(turns):
                standin.script(run.key, Text(f"turn {i} done"))
                started = time.perf_counter()
                reply = await call(host, "send", to="bench", body=f"message {i}")
                mid = reply["ids"][0]
                start = await run.wait_event("turn_start", for_message(mid))
                end = await run.wait_event("turn_end", for_message(mid))
                if not end.payload["ok"]:
                    raise RuntimeError(f"turn {i} failed: {end.payload['note']}")
                spawn_ms.append(float(start.payload["popped_to_spawn_ms"]))
                turn_s.append(time.perf_counter() - started)
    median = statistics.median(spawn_ms)
    print(f"turns: {turns} (real claude {claude_bin.name} against the API stand-in)")
    print(
        f"message popped -> claude process started: median {median:.2f} ms, "
        f"p90 {percentile(spawn_ms, 0.9):.2f} ms, min {min(spawn_ms):.2f} ms, "
        f"max {max(spawn_ms):.2f} ms"
    )
    verdict = "meets" if median <= TARGET_MS else "MISSES"
    print(f"SPEC §18 target: <= {TARGET_MS:.0f} ms -> {verdict} the target")
    print(
        f"whole turn (send -> turn_end, one claude run): median "
        f"{statistics.median(turn_s) * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=50)
    args = parser.parse_args()
    found = os.environ.get("HYPERHIVE_TEST_CLAUDE") or shutil.which("claude")
    if not found:
        sys.exit("claude CLI not found: set HYPERHIVE_TEST_CLAUDE or put claude on PATH")
    with StandIn() as standin, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(bench(args.turns, Path(found), standin, Path(tmp)))


if __name__ == "__main__":
    main()

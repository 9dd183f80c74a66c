"""Benchmark: how long before a message reaches the model, against bare claude (SPEC §18).

One run, real claude CLI against the API stand-in (from tests/), alternating, N samples of:

- floor: bare ``claude --print`` with no MCP server, spawn -> first model request;
- flags: bare claude with the engine's flags (settings, system prompt, tools, --continue)
  and no MCP server: what claude itself costs for our configuration;
- stdio MCP: the same claude with ``hive-ag3nt mcp`` as a stdio MCP server (what every turn
  paid before the SDK engine), spawn -> first model request;
- engine: the shipped turn engine (``TurnLoop`` in this process, a real in-process daemon),
  message sent -> first model request (pessimistic by the broker's send/recv, ~1 ms);

then the ratio engine / floor at the median (target <= 1.15), the whole turn, and the RSS of
a real ``hive-ag3nt serve`` process idle and during a turn (claude's own RSS excluded).
Prints numbers; asserts nothing.

    HYPERHIVE_TEST_CLAUDE=<path to claude> python bench/harness.py [--turns 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness.support import (
    MCP_COMMAND,
    HarnessProcess,
    harness_settings,
    running_harness,
    spawn_quiet,
)
from hivetest import DaemonProcess, call, running_hive
from hyperhive.harness.events import Event
from hyperhive.mcp_server.roles import BUILTIN_TOOLS
from standin.api import Hang, StandIn, Text, claude_env

TARGET_RATIO = 1.15


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def for_message(mid: int) -> Callable[[Event], bool]:
    return lambda e: e.payload["message_id"] == mid


async def first_request(standin: StandIn, key: str, since: float, within: float = 60) -> float:
    """Seconds from ``since`` (time.monotonic) to the first main-loop request of ``key``."""
    deadline = time.monotonic() + within
    while not standin.received(key):
        if time.monotonic() > deadline:
            raise TimeoutError("no model request")
        await asyncio.sleep(0.002)
    return standin.received(key)[0].at - since


async def bare_claude(
    claude_bin: Path,
    standin: StandIn,
    root: Path,
    mcp_config: Path | None,
    extra: list[str] | None = None,
) -> float:
    """One bare claude turn: spawn -> first model request, in seconds."""
    key = f"sk-bench-{uuid.uuid4().hex[:12]}"
    standin.script(key, Text("done"))
    env = claude_env(standin, root / "home", key)
    argv = [str(claude_bin), "--print", "--verbose", "--output-format", "stream-json"]
    argv += ["--model", "haiku", "--strict-mcp-config"]
    if mcp_config is not None:
        argv += ["--mcp-config", str(mcp_config)]
    argv += extra or []
    root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=root,
    )
    await proc.communicate(b"hi")
    return await first_request(standin, key, started)


def stdio_mcp_config(root: Path, socket: Path) -> Path:
    """An MCP config with our stdio server, as the pre-SDK engine gave every turn."""
    path = root / "mcp.json"
    server = {
        "command": MCP_COMMAND[0],
        "args": [*MCP_COMMAND[1:], "--role", "agent", "mcp"],
        "env": {
            "HYPERHIVE_AGENT_NAME": "bench",
            "HYPERHIVE_SOCKET": str(socket),
            **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}),
        },
    }
    path.write_text(json.dumps({"mcpServers": {"hyperhive": server}}))
    return path


async def latencies(
    turns: int, claude_bin: Path, standin: StandIn, root: Path
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {
        "floor": [],
        "flags": [],
        "stdio": [],
        "engine": [],
        "turn": [],
        "popped": [],
    }
    async with running_hive(root / "hive") as hive:
        host = hive.settings.host_socket
        sock = hive.settings.run_dir / "agents" / "bench" / "mcp.sock"
        await spawn_quiet(host, sock, "bench")
        mcp = stdio_mcp_config(root, sock)
        settings = harness_settings(root / "bench", "bench", sock, claude_bin)
        async with running_harness(
            root / "bench", "bench", sock, claude_bin, standin, settings
        ) as run:
            files = run.harness.loop.files
            # The engine's own flags on bare claude (no MCP): claude's cost of our setup.
            flags = [
                "--continue",
                "--settings",
                str(files.settings),
                "--append-system-prompt",
                files.system_prompt_text(),
                "--tools",
                ",".join(BUILTIN_TOOLS),
                "--allowedTools",
                ",".join(files.allowed_tools),
            ]
            # One unmeasured round of each: first runs pay cold caches.
            await bare_claude(claude_bin, standin, root / "warm", None)
            for i in range(turns + 1):
                out["floor"].append(await bare_claude(claude_bin, standin, root / "f", None))
                out["flags"].append(await bare_claude(claude_bin, standin, root / "c", None, flags))
                out["stdio"].append(await bare_claude(claude_bin, standin, root / "s", mcp))
                before = len(standin.received(run.key))
                standin.script(run.key, Text(f"turn {i} done"))
                sent = time.monotonic()
                reply = await call(host, "send", to="bench", body=f"message {i}")
                mid = reply["ids"][0]
                start = await run.wait_event("turn_start", for_message(mid))
                end = await run.wait_event("turn_end", for_message(mid))
                out["popped"].append(float(start.payload["popped_to_spawn_ms"]) / 1000)
                done = time.monotonic()
                if not end.payload["ok"]:
                    raise RuntimeError(f"turn {i} failed: {end.payload['note']}")
                request = standin.received(run.key)[before]
                out["engine"].append(request.at - sent)
                out["turn"].append(done - sent)
            for values in out.values():
                del values[0]  # the warm-up round
    return out


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def memory(claude_bin: Path, standin: StandIn, root: Path) -> tuple[int, int]:
    """RSS (KiB) of a real ``hive-ag3nt serve``: idle after a turn, and peak during one."""
    daemon = DaemonProcess(root / "daemon")
    daemon.start()
    agent = HarnessProcess(daemon, "bench", standin, claude_bin)
    try:
        await spawn_quiet(daemon.host_socket, daemon.socket_of("bench"), "bench")
        standin.script(agent.key, Text("warm-up"))
        agent.start()
        assert agent.proc is not None
        await call(daemon.host_socket, "send", to="bench", body="warm up")
        deadline = time.monotonic() + 60
        while len(agent.turn_ends()) < 1:
            if time.monotonic() > deadline:
                raise TimeoutError("warm-up turn did not end")
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # settle: let the turn's buffers go
        idle = rss_kib(agent.proc.pid)
        hang = Hang(max_seconds=2.0)
        standin.script(agent.key, hang)
        await call(daemon.host_socket, "send", to="bench", body="measure me")
        peak = idle
        deadline = time.monotonic() + 60
        while len(agent.turn_ends()) < 2:
            if time.monotonic() > deadline:
                raise TimeoutError("measured turn did not end")
            peak = max(peak, rss_kib(agent.proc.pid))
            await asyncio.sleep(0.01)
        return idle, peak
    finally:
        agent.stop()
        daemon.stop()


def ms(values: list[float]) -> str:
    return (
        f"median {statistics.median(values) * 1000:6.0f} ms, "
        f"p90 {percentile(values, 0.9) * 1000:6.0f} ms, min {min(values) * 1000:6.0f} ms"
    )


async def bench(turns: int, claude_bin: Path, standin: StandIn, root: Path) -> None:
    got = await latencies(turns, claude_bin, standin, root / "latency")
    idle, peak = await memory(claude_bin, standin, root / "memory")
    floor = statistics.median(got["floor"])
    print(f"samples: {turns} of each, alternating (real {claude_bin.name} vs the API stand-in)")
    print(f"floor   bare claude, no MCP server, spawn -> first model request: {ms(got['floor'])}")
    print(f"flags   bare claude with the engine's flags, no MCP server:      {ms(got['flags'])}")
    print(f"before  claude + stdio hive-ag3nt mcp, spawn -> first request:   {ms(got['stdio'])}")
    print(f"engine  shipped turn engine, message sent -> first request:      {ms(got['engine'])}")
    ratio = statistics.median(got["engine"]) / floor
    before = statistics.median(got["stdio"]) / floor
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    print(f"ratio engine/floor at the median: {ratio:.2f} (target <= {TARGET_RATIO}: {verdict})")
    print(f"ratio stdio-MCP/floor at the median (the pre-SDK engine's cost): {before:.2f}")
    flagged = statistics.median(got["flags"]) / floor
    print(f"ratio flags/floor at the median (claude's own cost of our flags): {flagged:.2f}")
    own = statistics.median(got["engine"]) / statistics.median(got["flags"])
    print(f"ratio engine/flags at the median (the engine's own overhead): {own:.2f}")
    print(f"whole turn (send -> turn_end): {ms(got['turn'])}")
    popped = [v * 1000 for v in got["popped"]]
    print(
        f"message popped -> SDK asked to spawn claude (SPEC §18 <= 30 ms): median "
        f"{statistics.median(popped):.2f} ms, p90 {percentile(popped, 0.9):.2f} ms"
    )
    print(f"hive-ag3nt serve RSS: idle {idle / 1024:.1f} MiB, during a turn {peak / 1024:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=20)
    args = parser.parse_args()
    found = os.environ.get("HYPERHIVE_TEST_CLAUDE") or shutil.which("claude")
    if not found:
        sys.exit("claude CLI not found: set HYPERHIVE_TEST_CLAUDE or put claude on PATH")
    with StandIn() as standin, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(bench(args.turns, Path(found), standin, Path(tmp)))


if __name__ == "__main__":
    main()

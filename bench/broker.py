"""Broker benchmarks (SPEC §18): wake latency, sustained durable sends, raw sqlite baseline.

Runs a real `hive-c0re serve` process on the local backend in a temp dir, drives it over
its unix sockets from this process, and measures raw sqlite inserts at the same
durability (WAL, synchronous=NORMAL, one commit per message) in the same run.

    .venv/bin/python bench/broker.py [--agents 50] [--messages 400] [--latency-rounds 1000]

Prints numbers only; nothing here asserts a target.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import Conn, drain, raw_sqlite_inserts, sustained_sends, wake


def start_daemon(root: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERHIVE_")}
    env.update(
        HYPERHIVE_STATE_DIR=str(root / "state"),
        HYPERHIVE_RUN_DIR=str(root / "run"),
        HYPERHIVE_BACKEND="local",
        # a0 sends 1,000 latency pings and then 400 more within seconds: above the default
        # burst. The checks still run on every send; they just never refuse here.
        HYPERHIVE_SEND_BURST="100000",
    )
    log = (root / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hyperhive.cli.c0re", "serve"], env=env, stdout=log, stderr=log
    )
    deadline = time.monotonic() + 30
    while "ready" not in (root / "daemon.log").read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit((root / "daemon.log").read_text())
        time.sleep(0.02)
    return proc


def sock(root: Path, name: str) -> Path:
    return root / "run" / "agents" / name / "mcp.sock"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="hh-bench-") as tmp:
        root = Path(tmp)
        proc = start_daemon(root)
        try:
            host = await Conn.open(root / "run" / "host.sock")
            for i in range(args.agents):
                reply = await host.call({"cmd": "spawn", "name": f"a{i}"})
                assert reply["kind"] == "ok", reply
            host.close()
            await asyncio.gather(*(drain(sock(root, f"a{i}")) for i in range(args.agents)))
            rss_idle = rss_mb(proc.pid)

            lat = await wake(sock(root, "a0"), sock(root, "a1"), "a1", args.latency_rounds)
            p50, p99 = pct(lat, 0.50) * 1000, pct(lat, 0.99) * 1000
            print(f"send -> parked recv wake ({args.latency_rounds} rounds):")
            print(f"  p50 {p50:.3f} ms (target <= 1 ms)   p99 {p99:.3f} ms (target <= 5 ms)")
            print(f"  mean {statistics.mean(lat) * 1000:.3f} ms   max {max(lat) * 1000:.3f} ms")

            cpu_before = cpu_seconds(proc.pid)
            socks = {f"a{i}": sock(root, f"a{i}") for i in range(args.agents)}
            sent, elapsed = await sustained_sends(socks, args.messages)
            daemon_cpu = (cpu_seconds(proc.pid) - cpu_before) / elapsed
            rate = sent / elapsed
            rss_busy = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(10)
        raw_one = raw_sqlite_inserts(root / "raw1.sqlite", args.raw_count, 1)
        raw_50 = raw_sqlite_inserts(root / "raw50.sqlite", args.raw_count * 5, args.agents)
    print(f"sustained durable sends, {args.agents} agents x {args.messages} each:")
    print(f"  {sent} messages in {elapsed:.2f} s = {rate:,.0f} msg/s (target >= 5,000)")
    print(f"  daemon CPU while sending: {daemon_cpu:.0%} of one core (the clients share the box)")
    print("raw sqlite inserts, same schema and pragmas (WAL, synchronous=NORMAL):")
    print(f"  one commit per insert (each message durable alone): {raw_one:,.0f} inserts/s")
    print(f"  one commit per {args.agents} inserts (group commit's best case): {raw_50:,.0f}/s")
    print(f"  broker / raw (commit per insert): {rate / raw_one:.0%} (target >= 30 %)")
    print(f"  broker / raw (commit per {args.agents}): {rate / raw_50:.0%}")
    print(f"daemon RSS, {args.agents} agents: {rss_idle:.1f} MB idle, {rss_busy:.1f} MB after load")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--messages", type=int, default=400, help="sends per agent")
    parser.add_argument("--latency-rounds", type=int, default=1000)
    parser.add_argument("--raw-count", type=int, default=20_000)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()

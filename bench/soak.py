"""Soak run (SPEC §18): 50 agents' socket clients, 10 dashboard SSE clients, steady traffic.

Starts a real daemon in a child process on the local backend (sockets only: no harness
processes) in a temp dir, spawns `--agents` agents, and for `--seconds` keeps every agent
sending to a random peer at a steady total `--rate` while every agent also has a parked
`recv` that acks what it gets. `--sse` clients hold `/dashboard/stream` open and count
frames; `/api/state` is fetched every few seconds. Every `--every` seconds one line shows
throughput, send and delivery latency (p50/p99), SSE frames, `/api/state` time, the
daemon's RSS and the error count; the summary adds the RSS trend (flat = no leak).

    .venv/bin/python bench/soak.py [--seconds 120] [--agents 50] [--sse 10] [--rate 500]

Bounded: at most 30 minutes. Prints numbers; asserts nothing (exit code 0 unless the
daemon could not be started).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from benchlib import Conn, agent_names

MAX_SECONDS = 1800


# -- the daemon under test ---------------------------------------------------------------------


def daemon_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERHIVE_")}
    env.update(
        HYPERHIVE_STATE_DIR=str(root / "state"),
        HYPERHIVE_RUN_DIR=str(root / "run"),
        HYPERHIVE_BACKEND="local",
        HYPERHIVE_HARNESS="false",  # the soak drives the agents' sockets itself
        HYPERHIVE_DASHBOARD_HOST="127.0.0.1",
        HYPERHIVE_DASHBOARD_PORT="0",  # a free port; the ready line names it
    )
    return env


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    root: Path
    url: str
    key: str

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_daemon(root: Path) -> Daemon:
    """`hive-c0re serve` in `root`, once its ready line (with the dashboard URL) is out."""
    log_path = root / "daemon.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hyperhive.cli.c0re", "serve"],
            env=daemon_env(root),
            stdout=log,
            stderr=log,
        )
    deadline = time.monotonic() + 30
    while "ready" not in (text := log_path.read_text()):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the daemon did not start:\n" + text)
        time.sleep(0.05)
    found = re.search(r"dashboard (http://\S+)", text)
    if found is None:
        proc.kill()
        raise SystemExit("the daemon serves no dashboard:\n" + text)
    # The operator's key, as `hive-c0re login` gets it from the host socket.
    login = subprocess.run(
        [sys.executable, "-m", "hyperhive.cli.c0re", "--json", "login"],
        env=daemon_env(root),
        capture_output=True,
        text=True,
        check=True,
    )
    key = json.loads(login.stdout)["url"].split("#key=", 1)[1]
    return Daemon(proc, root, found.group(1), key)


# -- load ----------------------------------------------------------------------------------------


@dataclass
class Window:
    """What happened since the last report line."""

    sent: int = 0
    delivered: int = 0
    errors: int = 0
    send_ms: list[float] = field(default_factory=list)
    deliver_ms: list[float] = field(default_factory=list)
    state_ms: list[float] = field(default_factory=list)


@dataclass
class Totals:
    sent: int = 0
    delivered: int = 0
    errors: int = 0
    send_ms: list[float] = field(default_factory=list)
    deliver_ms: list[float] = field(default_factory=list)
    state_ms: list[float] = field(default_factory=list)
    rss: list[tuple[float, float]] = field(default_factory=list)
    sse_frames: list[int] = field(default_factory=list)
    sse_resyncs: int = 0
    error_samples: list[str] = field(default_factory=list)

    def add(self, window: Window) -> None:
        self.sent += window.sent
        self.delivered += window.delivered
        self.errors += window.errors
        self.send_ms += window.send_ms
        self.deliver_ms += window.deliver_ms
        self.state_ms += window.state_ms


class Soak:
    def __init__(self, daemon: Daemon, names: list[str], args: argparse.Namespace) -> None:
        self.daemon = daemon
        self.names = names
        self.args = args
        self.window = Window()
        self.totals = Totals()
        self.sse_counts = [0] * args.sse
        self.stop = asyncio.Event()

    def socket_of(self, name: str) -> Path:
        return self.daemon.root / "run" / "agents" / name / "mcp.sock"

    def error(self, what: str) -> None:
        self.window.errors += 1
        if len(self.totals.error_samples) < 10:
            self.totals.error_samples.append(what)

    async def sender(self, me: str, rng: random.Random) -> None:
        conn = await Conn.open(self.socket_of(me))
        interval = len(self.names) / self.args.rate
        next_at = time.perf_counter() + rng.uniform(0, interval)
        peers = [n for n in self.names if n != me]
        try:
            while not self.stop.is_set():
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                next_at += interval
                start = time.perf_counter()
                body = json.dumps({"t": start})
                try:
                    reply = await conn.call({"cmd": "send", "to": rng.choice(peers), "body": body})
                except (OSError, ConnectionError, ValueError) as exc:
                    self.error(f"send: {exc!r}")
                    return
                if reply.get("kind") == "ok":
                    self.window.sent += 1
                    self.window.send_ms.append((time.perf_counter() - start) * 1000)
                else:
                    self.error(f"send: {reply}")
        finally:
            conn.close()

    async def receiver(self, me: str) -> None:
        conn = await Conn.open(self.socket_of(me))
        try:
            while not self.stop.is_set():
                try:
                    reply = await conn.call({"cmd": "recv", "wait_seconds": 1, "max": 32})
                    if reply.get("kind") != "messages":
                        if reply.get("kind") != "empty":
                            self.error(f"recv: {reply}")
                        continue
                    now = time.perf_counter()
                    items = reply["items"]
                    assert isinstance(items, list)
                    for item in items:
                        with contextlib.suppress(ValueError, KeyError, TypeError):
                            sent_at = json.loads(item["body"])["t"]
                            self.window.deliver_ms.append((now - sent_at) * 1000)
                    self.window.delivered += len(items)
                    acked = await conn.call({"cmd": "ack", "ids": [m["id"] for m in items]})
                    if acked.get("kind") != "ok":
                        self.error(f"ack: {acked}")
                except (OSError, ConnectionError, ValueError) as exc:
                    self.error(f"recv: {exc!r}")
                    return
        finally:
            conn.close()

    async def sse(self, i: int, session: aiohttp.ClientSession) -> None:
        try:
            async with session.get(self.daemon.url + "/dashboard/stream") as resp:
                if resp.status != 200:
                    self.error(f"sse: status {resp.status}")
                    return
                async for line in resp.content:
                    if line.startswith(b"event: change"):
                        self.sse_counts[i] += 1
                    elif line.startswith(b"event: resync"):
                        self.totals.sse_resyncs += 1
                    if self.stop.is_set():
                        return
        except (aiohttp.ClientError, OSError) as exc:
            if not self.stop.is_set():
                self.error(f"sse: {exc!r}")

    async def state_poller(self, session: aiohttp.ClientSession) -> None:
        while not self.stop.is_set():
            start = time.perf_counter()
            try:
                async with session.get(self.daemon.url + "/api/state") as resp:
                    await resp.read()
                    if resp.status != 200:
                        self.error(f"/api/state: status {resp.status}")
            except (aiohttp.ClientError, OSError) as exc:
                self.error(f"/api/state: {exc!r}")
            self.window.state_ms.append((time.perf_counter() - start) * 1000)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 5)

    async def reporter(self, started: float) -> None:
        print(
            f"{'t(s)':>5} {'sent/s':>7} {'dlvd/s':>7} {'send p50/p99 ms':>16}"
            f" {'deliver p50/p99 ms':>19} {'sse fr/s min':>12} {'state ms':>9}"
            f" {'RSS MB':>7} {'errors':>6}",
            flush=True,
        )
        last = time.perf_counter()
        last_sse = list(self.sse_counts)
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.args.every)
            now = time.perf_counter()
            span = now - last
            window, self.window = self.window, Window()
            self.totals.add(window)
            rss = self.daemon.rss_mb()
            self.totals.rss.append((now - started, rss))
            sse_rates = [(c - p) / span for c, p in zip(self.sse_counts, last_sse, strict=True)]
            last_sse = list(self.sse_counts)
            print(
                f"{now - started:5.0f} {window.sent / span:7.0f} {window.delivered / span:7.0f}"
                f" {fmt(window.send_ms)} {fmt(window.deliver_ms):>19}"
                f" {min(sse_rates, default=0):12.0f}"
                f" {statistics.median(window.state_ms) if window.state_ms else 0:9.1f}"
                f" {rss:7.1f} {window.errors:6d}",
                flush=True,
            )
            last = now


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def fmt(values: list[float]) -> str:
    return f"{pct(values, 0.5):7.2f}/{pct(values, 0.99):7.2f}"


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of RSS over time, after the first third (warm-up) is dropped."""
    kept = samples[len(samples) // 3 :]
    if len(kept) < 2:
        return float("nan")
    xs = [t for t, _ in kept]
    ys = [r for _, r in kept]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in kept) / var * 60 if var else float("nan")


async def soak(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="hh-soak-") as tmp:
        root = Path(tmp)
        daemon = start_daemon(root)
        try:
            await run(daemon, args)
        finally:
            daemon.stop()


async def run(daemon: Daemon, args: argparse.Namespace) -> None:
    names = agent_names(args.agents, "sk")
    host = await Conn.open(daemon.root / "run" / "host.sock")
    for name in names:
        reply = await host.call({"cmd": "spawn", "name": name})
        if reply.get("kind") != "ok":
            raise SystemExit(f"spawn {name} failed: {reply}")
    host.close()
    rss_start = daemon.rss_mb()
    print(f"daemon: hive-c0re serve, pid {daemon.proc.pid}, dashboard {daemon.url}")
    print(
        f"load: {args.agents} agents x (1 sender + 1 parked recv/ack), {args.rate} msg/s total,"
        f" {args.sse} SSE clients, /api/state every 5 s, {args.seconds} s;"
        f" RSS after spawning: {rss_start:.1f} MB",
        flush=True,
    )
    state = Soak(daemon, names, args)
    rng = random.Random(1)
    started = time.perf_counter()
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None),
        headers={"Authorization": f"Bearer {daemon.key}"},
    ) as session:
        tasks = [
            *(asyncio.create_task(state.sse(i, session)) for i in range(args.sse)),
            asyncio.create_task(state.state_poller(session)),
            *(asyncio.create_task(state.receiver(n)) for n in names),
            *(asyncio.create_task(state.sender(n, random.Random(rng.random()))) for n in names),
        ]
        report = asyncio.create_task(state.reporter(started))
        await asyncio.sleep(args.seconds)
        state.stop.set()
        await report
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.perf_counter() - started
    totals = state.totals
    rss_values = [r for _, r in totals.rss]
    print("summary:")
    print(
        f"  throughput: {totals.sent:,} sends acknowledged ({totals.sent / elapsed:,.0f}/s),"
        f" {totals.delivered:,} delivered ({totals.delivered / elapsed:,.0f}/s)"
    )
    print(f"  send latency (request -> ok): p50/p99 {fmt(totals.send_ms)} ms")
    print(f"  delivery latency (send -> parked recv returns): p50/p99 {fmt(totals.deliver_ms)} ms")
    print(f"  /api/state during load: p50/p99 {fmt(totals.state_ms)} ms")
    print(
        f"  SSE: {args.sse} clients received {min(state.sse_counts):,}..{max(state.sse_counts):,}"
        f" change frames, {totals.sse_resyncs} resyncs"
    )
    print(
        f"  daemon RSS: {rss_start:.1f} MB after spawning, {rss_values[0]:.1f} first sample,"
        f" {rss_values[-1]:.1f} last, {max(rss_values):.1f} max;"
        f" trend after warm-up {slope_mb_per_min(totals.rss):+.2f} MB/min"
    )
    print(f"  errors: {totals.errors}")
    for sample in totals.error_samples:
        print(f"    {sample}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--sse", type=int, default=10)
    parser.add_argument("--rate", type=float, default=500, help="total sends per second")
    parser.add_argument("--every", type=float, default=10, help="seconds between report lines")
    args = parser.parse_args()
    if not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"--seconds must be between 1 and {MAX_SECONDS}")
    asyncio.run(soak(args))


if __name__ == "__main__":
    main()

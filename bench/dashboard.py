"""Benchmark: the dashboard's `/api/state` and its SSE fan-out (SPEC §18).

Targets on a 2-core machine: `/api/state` with 100 agents, 10,000 messages and 1,000
approvals in ≤ 50 ms; 50 browser streams taking 1,000 events/s with no growing backlog.

The broker's sqlite file is seeded directly (agents, messages, approvals rows; the agents are
`stopped`, so the local backend starts no harness processes for them), then a real
in-process daemon (local backend) and its dashboard are started on 127.0.0.1. `/api/state`
is fetched over HTTP, one request at a time. For the fan-out, a child process holds 50 SSE
streams (it only counts frames, so the reader is not the bottleneck) while real
`broker.send` calls produce 1,000 messages/s; every 0.5 s the server-side backlog (frames
queued for the streams, summed and max) is sampled. Prints numbers; asserts nothing.

    .venv/bin/python bench/dashboard.py [--seconds 10] [--streams 50] [--rate 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import aiohttp
from benchlib import agent_names
from hivetest import make_settings
from hyperhive.daemon import Hive
from hyperhive.dashboard.app import FANOUT, create_app
from hyperhive.db.connection import connect, migrate
from hyperhive.db.schema import BROKER_MIGRATIONS
from hyperhive.http import serve_app

STATE_TARGET_MS = 50.0


def seed(db_path: Path, agents: int, messages: int, approvals: int, pending: int) -> list[str]:
    """Write the rows straight into the broker database (schema from the migrations)."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    schema = connect(db_path)
    migrate(schema, BROKER_MIGRATIONS)
    schema.close()
    names = agent_names(agents, "ag")
    now = int(time.time())
    for name in names:  # pending approvals of an agent without a state dir are reaped
        for sub in ("config", "claude", "state"):
            (db_path.parent / "agents" / name / sub).mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path)
    with conn:
        conn.executemany(
            "INSERT INTO agents (name, role, state, created_at) VALUES (?, 'agent', 'stopped', ?)",
            [(n, now - 86400) for n in names],
        )
        conn.execute(
            "INSERT INTO agents (name, role, state, created_at) VALUES"
            " ('manager', 'manager', 'running', ?)",
            (now - 86400,),
        )
        rows = []
        for i in range(messages):
            sender = names[i % len(names)]
            to = "operator" if i % 20 == 0 else names[(i * 7 + 3) % len(names)]
            sent_at = now - messages + i
            rows.append((sender, to, f"message {i}: " + "lorem ipsum " * 8, *[sent_at] * 3))
        conn.executemany(
            "INSERT INTO messages (sender, recipient, body, sent_at, delivered_at, acked_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany(
            "INSERT INTO approvals (agent, kind, commit_ref, fetched_sha, description,"
            " requested_at, status, resolved_at) VALUES (?, 'apply_commit', ?, ?, ?, ?, ?, ?)",
            [
                (
                    names[i % len(names)],
                    f"{i:07x}",
                    f"{i:040x}",
                    f"config change {i}",
                    now - approvals + i,
                    "pending" if i >= approvals - pending else "approved",
                    None if i >= approvals - pending else now,
                )
                for i in range(approvals)
            ],
        )
    conn.close()
    return names


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def time_get(url: str, n: int, key: str) -> tuple[list[float], int]:
    """Sequential GETs with the operator's key; returns milliseconds and the body size."""
    times: list[float] = []
    size = 0
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as session:
        for _ in range(n):
            start = time.perf_counter()
            async with session.get(url) as resp:
                body = await resp.read()
                assert resp.status == 200, resp.status
            times.append((time.perf_counter() - start) * 1000)
            size = len(body)
    return times, size


async def bench_state(root: Path, pending: int, requests: int) -> None:
    settings = make_settings(root)
    seed(settings.broker_db, 100, 10_000, 1_000, pending)
    hive = Hive(settings)
    await hive.start()
    bound = await serve_app(create_app(hive), "127.0.0.1", 0)
    try:
        key = hive.credentials.dashboard_key()
        await time_get(bound.url + "/api/state", 3, key)  # warm up
        for path in ("/api/state", "/api/state?html=1", "/"):
            times, size = await time_get(bound.url + path, requests, key)
            print(
                f"  GET {path:<18} ({pending:>4} pending) p50 {statistics.median(times):6.1f} ms"
                f"  p95 {pct(times, 0.95):6.1f} ms  max {max(times):6.1f} ms"
                f"  {size / 1024:6.0f} KiB"
                + (f"  target ≤ {STATE_TARGET_MS:.0f} ms" if path == "/api/state" else "")
            )
    finally:
        await bound.stop()
        await hive.stop()


# -- SSE fan-out -----------------------------------------------------------------------------


async def reader(url: str, streams: int, seconds: float) -> None:
    """Child process: hold `streams` SSE connections, count frames, print JSON."""
    counts = [0] * streams
    last_seq = [0] * streams
    last_at = [0.0] * streams
    connected = asyncio.Event()
    opened = 0

    async def one(i: int, session: aiohttp.ClientSession) -> None:
        nonlocal opened
        async with session.get(url + "/dashboard/stream") as resp:
            opened += 1
            if opened == streams:
                connected.set()
            tail = b""
            async for chunk in resp.content.iter_any():
                data = tail + chunk
                counts[i] += data.count(b"\nevent: change")
                cut = data.rfind(b"id: ")
                if cut >= 0:
                    end = data.find(b"\n", cut)
                    if end > 0:
                        # "<epoch>-<seq>" (the epoch tells lives of the daemon apart)
                        last_seq[i] = int(data[cut + 4 : end].rsplit(b"-", 1)[-1])
                        last_at[i] = time.monotonic()
                tail = data[-64:]

    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    # The operator's key comes on stdin (never on a command line others can read).
    key = sys.stdin.readline().strip()
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
        tasks = [asyncio.create_task(one(i, session)) for i in range(streams)]
        await connected.wait()
        print("connected", flush=True)
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"counts": counts, "last_seq": last_seq}), flush=True)


async def bench_fanout(root: Path, streams: int, rate: int, seconds: float) -> None:
    settings = make_settings(root)
    names = seed(settings.broker_db, 20, 0, 0, 0)
    hive = Hive(settings)
    await hive.start()
    app = create_app(hive)
    bound = await serve_app(app, "127.0.0.1", 0)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--reader",
        bound.url,
        "--streams",
        str(streams),
        "--seconds",
        str(seconds + 3),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    child.stdin.write(hive.credentials.dashboard_key().encode() + b"\n")
    await child.stdin.drain()
    child.stdin.close()
    await child.stdout.readline()  # "connected"
    fanout = app[FANOUT]
    start_seq = hive.hub.seq
    samples: list[tuple[float, int, int]] = []
    sent = 0
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    tick = 0.01
    per_tick = max(1, round(rate * tick))
    next_sample = t0
    inflight: set[asyncio.Task[list[int]]] = set()
    while (now := loop.time()) - t0 < seconds:
        due = int((now - t0) * rate) - sent
        for _ in range(min(due, per_tick * 5)):
            task = asyncio.create_task(
                hive.broker.send("operator", names[sent % len(names)], f"bench {sent}")
            )
            inflight.add(task)
            task.add_done_callback(inflight.discard)
            sent += 1
        if now >= next_sample:
            queued = [s.queue.qsize() for s in fanout.streams]
            samples.append((now - t0, sum(queued), max(queued, default=0)))
            next_sample += 0.5
        await asyncio.sleep(tick)
    await asyncio.gather(*inflight)
    elapsed = loop.time() - t0
    end_seq = hive.hub.seq
    drain_start = loop.time()
    for _ in range(1000):  # up to 10 s for the streams to empty their queues
        if not any(s.queue.qsize() for s in fanout.streams):
            break
        await asyncio.sleep(0.01)
    drained_ms = (loop.time() - drain_start) * 1000
    out, _ = await child.communicate()
    result = json.loads(out.decode().strip().splitlines()[-1])
    resyncs = sum(s.resyncs for s in fanout.streams)
    await bound.stop()
    await hive.stop()

    changes = end_seq - start_seq
    counts = result["counts"]
    half = len(samples) // 2
    first = max((s[2] for s in samples[:half]), default=0)
    second = max((s[2] for s in samples[half:]), default=0)
    print(
        f"  published {changes} changes in {elapsed:.1f} s = {changes / elapsed:,.0f} events/s"
        f" ({sent} broker.send calls)"
    )
    print(
        f"  {streams} streams received min {min(counts)}  max {max(counts)} frames"
        f" (expected {changes}); every stream reached seq {end_seq}:"
        f" {all(s == end_seq for s in result['last_seq'])}"
    )
    print(
        f"  server backlog per stream: max {first} frames in the first half,"
        f" {second} in the second half; resyncs {resyncs}; drained {drained_ms:.0f} ms"
        " after the last send"
    )
    print("  backlog samples (s, total queued, max per stream):")
    print("   ", "  ".join(f"{t:.1f}:{total}/{peak}" for t, total, peak in samples))
    print(f"  target: {rate:,} events/s to {streams} streams with no growing backlog")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--reader", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reader:
        await reader(args.reader, args.streams, args.seconds)
        return
    with tempfile.TemporaryDirectory(prefix="hh-bench-") as tmp:
        print("/api/state: 100 agents, 10,000 messages, 1,000 approvals (seeded sqlite)")
        await bench_state(Path(tmp) / "a", 100, args.requests)
        await bench_state(Path(tmp) / "b", 1000, args.requests)
        print(f"SSE fan-out: {args.streams} streams, {args.rate} events/s for {args.seconds} s")
        await bench_fanout(Path(tmp) / "c", args.streams, args.rate, args.seconds)


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main())

"""Store benchmarks: the embedded sqlite file against PostgreSQL, one host and two.

For each store, in one run: send -> parked recv wake on one host; durable sends/s from
`--agents` agents through real `hive-c0re serve` processes; and the engine's own raw
insert rate at the same durability, measured here too (sqlite: WAL, synchronous=NORMAL, one
commit per insert; PostgreSQL: fsync on, synchronous_commit on, one commit per insert from
as many connections as agents). For PostgreSQL also the wake across two daemons (alpha's
agent sends, beta's agent's parked recv wakes by NOTIFY). The PostgreSQL server is started
here (Debian's binaries, `initdb` in a temporary directory, fsync on) and stopped after.

    .venv/bin/python bench/store.py [--agents 50] [--messages 200] [--rounds 500]

Prints numbers and ratios only; nothing here asserts a target.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchlib import Conn, drain, raw_sqlite_inserts, sustained_sends, wake

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from hivetest.pg import PgServer  # the tests' server helper, shared
from hyperhive.db.schema import POSTGRES_MIGRATIONS


class Daemon:
    """A real `hive-c0re serve` on the local backend, rooted at `root`."""

    def __init__(self, root: Path, host: str, store: dict[str, str]) -> None:
        self.root = root
        env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERHIVE_")}
        env.update(
            HYPERHIVE_STATE_DIR=str(root / "state"),
            HYPERHIVE_RUN_DIR=str(root / "run"),
            HYPERHIVE_BACKEND="local",
            HYPERHIVE_DASHBOARD_PORT="0",
            HYPERHIVE_HOST_NAME=host,
            HYPERHIVE_SEND_BURST="1000000",
            HYPERHIVE_SEND_RATE_PER_SECOND="1000000",
            **store,
        )
        root.mkdir(parents=True)
        log = (root / "daemon.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hyperhive.cli.c0re", "serve"], env=env, stdout=log, stderr=log
        )
        deadline = time.monotonic() + 60
        while "ready" not in (root / "daemon.log").read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit((root / "daemon.log").read_text())
            time.sleep(0.02)

    def sock(self, name: str) -> Path:
        return self.root / "run" / "agents" / name / "mcp.sock"

    async def spawn(self, names: list[str]) -> None:
        host = await Conn.open(self.root / "run" / "host.sock")
        for name in names:
            reply = await host.call({"cmd": "spawn", "name": name})
            assert reply["kind"] == "ok", reply
        host.close()
        await asyncio.gather(*(drain(self.sock(n)) for n in names))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def raw_postgres(server: PgServer, clients: int, seconds: float) -> float:
    """Inserts/s into the broker's schema from `clients` connections at once, each insert
    its own transaction (synchronous_commit on: committed = flushed to the WAL)."""
    import psycopg

    url = server.database()
    with psycopg.connect(url, password=server.password, autocommit=True) as conn:
        for _, _, script in POSTGRES_MIGRATIONS:
            conn.execute(script.encode())
    counts = [0] * clients
    go = threading.Event()
    stop = threading.Event()

    def client(i: int) -> None:
        with psycopg.connect(url, password=server.password, autocommit=True) as conn:
            now = int(time.time())
            go.wait()
            while not stop.is_set():
                conn.execute(
                    "INSERT INTO messages (sender, recipient, body, sent_at)"
                    " VALUES (%s, %s, %s, %s)",
                    (f"a{i}", "a0", f"m{counts[i]}", now),
                )
                counts[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # every client connected
    go.set()
    start = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    elapsed = time.perf_counter() - start
    for t in threads:
        t.join()
    return sum(counts) / elapsed


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def show_wake(label: str, samples: list[float]) -> None:
    print(
        f"  {label}: p50 {pct(samples, 0.5):.2f} ms  p99 {pct(samples, 0.99):.2f} ms"
        f"  max {max(samples) * 1000:.2f} ms  ({len(samples)} rounds)"
    )


async def run_store(args: argparse.Namespace, root: Path, server: PgServer | None) -> None:
    names = [f"a{i}" for i in range(args.agents)]
    store: dict[str, str] = {}
    if server is not None:
        store = {
            "HYPERHIVE_DATABASE_URL": server.database(),
            "HYPERHIVE_DATABASE_PASSWORD_FILE": str(server.password_file),
        }
    label = "PostgreSQL" if server else "sqlite"
    alpha = Daemon(root / label / "alpha", "alpha", store)
    beta = Daemon(root / label / "beta", "beta", store) if server else None
    try:
        await alpha.spawn(names)
        print(f"{label}:")
        print(" send -> parked recv wake")
        show_wake("one host  ", await wake(alpha.sock("a0"), alpha.sock("a1"), "a1", args.rounds))
        if beta is not None:
            await beta.spawn(["b0"])
            await asyncio.sleep(0.5)  # alpha hears of b0
            across = await wake(alpha.sock("a0"), beta.sock("b0"), "b0", args.rounds)
            show_wake("two hosts ", across)
        sent, elapsed = await sustained_sends({n: alpha.sock(n) for n in names}, args.messages)
        rate = sent / elapsed
    finally:
        alpha.stop()
        if beta is not None:
            beta.stop()
    if server is None:
        raw = raw_sqlite_inserts(root / "raw.sqlite", args.raw_count, 1)
        how = "one connection, one commit per insert"
    else:
        raw = raw_postgres(server, args.agents, args.raw_seconds)
        how = f"{args.agents} connections, one commit per insert"
    print(f" durable sends, {args.agents} agents x {args.messages}: {rate:,.0f} msg/s")
    print(f" raw inserts at the same durability ({how}): {raw:,.0f}/s")
    print(f" broker / raw: {rate / raw:.0%} (target >= 30 %)")


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="hh-bench-store-") as tmp:
        root = Path(tmp)
        await run_store(args, root, None)
        server = PgServer(fsync=True).start()
        try:
            await run_store(args, root, server)
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--messages", type=int, default=200, help="sends per agent")
    parser.add_argument("--rounds", type=int, default=500, help="wake rounds")
    parser.add_argument("--raw-count", type=int, default=20_000, help="sqlite raw inserts")
    parser.add_argument("--raw-seconds", type=float, default=5.0, help="PostgreSQL raw run")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()

"""Pieces the benchmark scripts share (run them as `python bench/<name>.py`)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

from hyperhive.agents.names import agent_port
from hyperhive.db.connection import PRAGMAS
from hyperhive.db.schema import BROKER_MIGRATIONS


class Conn:
    """A minimal JSON-lines client (no pydantic here: measure the daemon, not the client)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, path: Path) -> Conn:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=2**24)
        return cls(reader, writer)

    async def call(self, payload: dict[str, object]) -> dict[str, object]:
        self.writer.write(json.dumps(payload).encode() + b"\n")
        line = await self.reader.readline()
        if not line:
            raise ConnectionError("the daemon closed the connection")
        reply: dict[str, object] = json.loads(line)
        return reply

    def close(self) -> None:
        self.writer.close()


async def drain(path: Path) -> None:
    """recv and ack everything waiting on the socket at `path`."""
    c = await Conn.open(path)
    while (reply := await c.call({"cmd": "recv", "max": 32}))["kind"] == "messages":
        items = reply["items"]
        assert isinstance(items, list)
        await c.call({"cmd": "ack", "ids": [m["id"] for m in items]})
    c.close()


async def wake(sender_sock: Path, receiver_sock: Path, to: str, rounds: int) -> list[float]:
    """Seconds from a send's start to the parked recv's reply, `rounds` times (the
    receiver acks each)."""
    sender = await Conn.open(sender_sock)
    receiver = await Conn.open(receiver_sock)
    samples = []
    for i in range(rounds):
        parked = asyncio.create_task(receiver.call({"cmd": "recv", "wait_seconds": 60}))
        await asyncio.sleep(0.001)  # let the recv reach the daemon and park
        start = time.perf_counter()
        await sender.call({"cmd": "send", "to": to, "body": f"ping {i}"})
        reply = await parked
        samples.append(time.perf_counter() - start)
        items = reply["items"]
        assert isinstance(items, list), reply
        await receiver.call({"cmd": "ack", "ids": [m["id"] for m in items]})
    sender.close()
    receiver.close()
    return samples


async def sustained_sends(socks: dict[str, Path], per_agent: int) -> tuple[int, float]:
    """Every agent of `socks` (name -> socket) sends `per_agent` messages to the next one,
    all at once, each acknowledged after its commit; (messages, seconds)."""
    names = list(socks)
    conns = [await Conn.open(socks[n]) for n in names]

    async def run(i: int, conn: Conn) -> None:
        to = names[(i + 1) % len(names)]
        for n in range(per_agent):
            reply = await conn.call({"cmd": "send", "to": to, "body": f"m{n} from {names[i]}"})
            assert reply["kind"] == "ok", reply

    start = time.perf_counter()
    await asyncio.gather(*(run(i, c) for i, c in enumerate(conns)))
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    return len(names) * per_agent, elapsed


def raw_sqlite_inserts(path: Path, count: int, batch: int) -> float:
    """Inserts/s into the broker's schema with the broker's pragmas (WAL,
    synchronous=NORMAL), committing every `batch`."""
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    for _, _, script in BROKER_MIGRATIONS:
        conn.executescript(script)
    now = int(time.time())
    start = time.perf_counter()
    for i in range(0, count, batch):
        conn.execute("BEGIN IMMEDIATE")
        for j in range(batch):
            conn.execute(
                "INSERT INTO messages (sender, recipient, body, sent_at) VALUES (?, ?, ?, ?)",
                ("a0", "a1", f"m{i + j}", now),
            )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return count / elapsed


def agent_names(count: int, prefix: str) -> list[str]:
    """`count` valid names with distinct web UI ports (spawn refuses a port clash)."""
    names: list[str] = []
    ports: set[int] = set()
    i = 0
    while len(names) < count:
        name = f"{prefix}{i:03d}"
        i += 1
        if agent_port(name) not in ports:
            ports.add(agent_port(name))
            names.append(name)
    return names

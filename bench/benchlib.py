"""Pieces the benchmark scripts share (run them as `python bench/<name>.py`)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hyperhive.agents.names import agent_port


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

"""Test support for the daemon: an in-process hive, a real daemon process, raw socket clients."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from hyperhive.daemon import Hive
from hyperhive.settings import BackendKind, Settings

STORE: dict[str, Any] = {}
"""Settings every hive of the running test gets for its store: empty = the embedded sqlite
file; a `store` fixture (tests/broker/conftest.py) puts a PostgreSQL database here."""


def make_settings(root: Path, **overrides: Any) -> Settings:
    """Settings with state and run dirs under `root`, the local backend and the test's
    store (`STORE`)."""
    values: dict[str, Any] = {
        "state_dir": root / "state",
        "run_dir": root / "run",
        "backend": BackendKind.LOCAL,
        **STORE,
    }
    values.update(overrides)
    return Settings(**values)


def query(hive: Hive, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Rows of a read on the hive's own store (either engine; `?` placeholders)."""
    return hive.db.read(lambda conn: [tuple(r) for r in conn.execute(sql, args).fetchall()])


@asynccontextmanager
async def running_hive(root: Path, **overrides: Any) -> AsyncIterator[Hive]:
    """A started in-process daemon; stopped on exit."""
    hive = Hive(make_settings(root, **overrides))
    await hive.start()
    try:
        yield hive
    finally:
        await hive.stop()


class Client:
    """A raw JSON-lines connection to one socket (dict in, dict out)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, path: Path) -> Client:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=2**24)
        return cls(reader, writer)

    async def raw(self, line: bytes) -> dict[str, Any]:
        self.writer.write(line)
        await self.writer.drain()
        reply = await asyncio.wait_for(self.reader.readline(), 30)
        assert reply, "the daemon closed the connection"
        result: dict[str, Any] = json.loads(reply)
        return result

    async def call(self, cmd: str, **fields: Any) -> dict[str, Any]:
        return await self.raw(json.dumps({"cmd": cmd, **fields}).encode() + b"\n")

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def call(path: Path, cmd: str, **fields: Any) -> dict[str, Any]:
    """One request on a fresh connection."""
    client = await Client.open(path)
    try:
        return await client.call(cmd, **fields)
    finally:
        await client.close()


def daemon_env(root: Path, **extra: str) -> dict[str, str]:
    """Environment for a real `hive-c0re` process rooted at `root`; `extra` overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERHIVE_")}
    env.update(
        HYPERHIVE_STATE_DIR=str(root / "state"),
        HYPERHIVE_RUN_DIR=str(root / "run"),
        HYPERHIVE_BACKEND="local",
        HYPERHIVE_DASHBOARD_PORT="0",  # parallel daemons must not fight over 7000
    )
    env.update(extra)
    return env


class DaemonProcess:
    """A real `hive-c0re serve` process."""

    def __init__(self, root: Path, **extra_env: str) -> None:
        self.root = root
        self.env = daemon_env(root, **extra_env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "daemon.log"

    @property
    def host_socket(self) -> Path:
        return self.root / "run" / "host.sock"

    def socket_of(self, name: str) -> Path:
        if name == "manager":
            return self.root / "run" / "manager" / "mcp.sock"
        return self.root / "run" / "agents" / name / "mcp.sock"

    def start(self, timeout: float = 20) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.host_socket.unlink(missing_ok=True)
        log = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hyperhive.cli.c0re", "serve"],
            env=self.env,
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hive-c0re exited: {self.log.read_text()}")
            if "ready" in self.log.read_text():
                return
            time.sleep(0.02)
        raise TimeoutError(f"hive-c0re did not become ready: {self.log.read_text()}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        # a fresh start must see a fresh "ready" line
        self.log.write_text("")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hyperhive.cli.c0re", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )


async def drain(sock: Path) -> list[dict[str, Any]]:
    """Pop and ack everything waiting on `sock` (e.g. the kick note after spawn)."""
    client = await Client.open(sock)
    try:
        got: list[dict[str, Any]] = []
        while True:
            reply = await client.call("recv", max=32)
            if reply["kind"] == "empty":
                return got
            got += reply["items"]
            await client.call("ack", ids=[m["id"] for m in reply["items"]])
    finally:
        await client.close()


async def wait_until(predicate: Any, limit: float = 5.0, what: str = "condition") -> None:
    """Poll `predicate()` (sync) every 5 ms until true; fail after `limit` seconds."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit} s waiting for {what}")
        await asyncio.sleep(0.005)

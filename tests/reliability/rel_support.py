"""Helpers of the reliability suite: hypothesis settings, state digests, a blocking client,
a tmpfs mount that is always unmounted."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

FUZZ = settings(
    max_examples=80,
    # A real daemon answers over a socket: timing is bench/'s business, not the fuzzer's.
    deadline=None,
    # Under CI the run is derandomized so a red build can be reproduced; locally each run
    # explores new inputs (and hypothesis' database replays the ones that failed).
    derandomize=IN_CI,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
"""Settings for every property test here (bounded examples, no per-example deadline)."""
if IN_CI:
    FUZZ = settings(FUZZ, database=None)  # a fresh checkout has nothing to replay

STATE_TABLES = ("agents", "messages", "approvals", "operator_questions")
WATCH_EVENTS = ("needs_login", "logged_in", "container_crash", "needs_update")
"""System events the daemon's own watchers send on a timer, whatever the clients do."""


def _background(table: str, row: sqlite3.Row) -> bool:
    if table != "messages" or row["sender"] != "system":
        return False
    try:
        event = json.loads(row["body"])
    except ValueError:
        return False
    return isinstance(event, dict) and event.get("event") in WATCH_EVENTS


def state_rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the broker's state tables, read through a separate connection.

    Rows the daemon's timers write on their own (crash watch, login watch) are left out: a
    request cannot cause them, and they would make 'refused => unchanged' flaky.
    """
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return {
            table: [
                tuple(row)
                for row in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")
                if not _background(table, row)
            ]
            for table in STATE_TABLES
        }
    finally:
        conn.close()


def state_digest(db: Path) -> str:
    """A hash of `state_rows`."""
    return hashlib.sha256(repr(state_rows(db)).encode()).hexdigest()


TRANSIENT_STATES = ("spawning", "starting", "stopping", "restarting", "rebuilding", "destroying")
"""Agent states a running verb leaves behind until it finishes."""


def settle(db: Path, quiet: float = 0.5, within: float = 30.0) -> None:
    """Wait until no verb is running and the state has not changed for `quiet` seconds.

    A successful request may keep writing after its answer (a spawn approved in the
    background, a verb answered 202, a kick note); the next example's 'refused =>
    unchanged' needs calm. Gives up after `within` seconds (the next check then reports
    whatever still moves).
    """
    deadline = time.monotonic() + within
    last = state_digest(db)
    calm_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = state_digest(db)
        busy = query(
            db,
            f"SELECT count(*) FROM agents WHERE state IN ({','.join('?' * len(TRANSIENT_STATES))})",
            *TRANSIENT_STATES,
        )[0][0]
        if now != last or busy:
            last, calm_since = now, time.monotonic()
        elif time.monotonic() - calm_since >= quiet:
            return


def state_change(before: dict[str, list[tuple[Any, ...]]], db: Path) -> str:
    """'' when `db` still holds `before`, else the rows that appeared and disappeared."""
    after = state_rows(db)
    changes = []
    for table in STATE_TABLES:
        new = set(after[table]) - set(before[table])
        gone = set(before[table]) - set(after[table])
        if new or gone:
            changes.append(f"{table}: +{sorted(new)[:3]} -{sorted(gone)[:3]}")
    return "; ".join(changes)


def query(db: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Rows of one read-only query against `db`."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return [tuple(row) for row in conn.execute(sql, args)]
    finally:
        conn.close()


class LineClient:
    """A blocking JSON-lines connection (hypothesis drives sync test bodies)."""

    def __init__(self, path: Path, timeout: float = 30) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rwb")

    def raw(self, line: bytes) -> dict[str, Any]:
        """Write `line` (which must end in a newline) and read exactly one reply line."""
        self.file.write(line)
        self.file.flush()
        reply = self.file.readline()
        assert reply.endswith(b"\n"), f"the daemon closed the connection (read {reply!r})"
        parsed = json.loads(reply)
        assert isinstance(parsed, dict), f"a reply must be a JSON object, got {reply!r}"
        return parsed

    def call(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """One request, one reply."""
        return self.raw(json.dumps({"cmd": cmd, **fields}).encode() + b"\n")

    def close(self) -> None:
        """Close the connection."""
        self.file.close()
        self.sock.close()


def _umount(mountpoint: Path) -> None:
    done = subprocess.run(["umount", str(mountpoint)], capture_output=True, check=False)
    if done.returncode != 0:
        # Something (a killed daemon's file, a cwd) still holds it: detach it anyway so the
        # mount never outlives the test.
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, check=False)


@contextmanager
def tmpfs(mountpoint: Path, size: str) -> Iterator[Path]:
    """A fresh tmpfs of `size` at `mountpoint`, unmounted on exit even on failure.

    Mounting needs root (or CAP_SYS_ADMIN). Where it is impossible the test fails under CI
    (a disk-full test that silently passes is worse than none) and is skipped elsewhere.
    """
    mountpoint.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mountpoint)],
            capture_output=True,
            text=True,
            check=False,
        )
        problem = done.stderr.strip().rstrip(".") if done.returncode != 0 else ""
    except FileNotFoundError:
        problem = "there is no mount command on PATH"
    if problem:
        message = (
            f"cannot mount a {size} tmpfs at {mountpoint}: {problem}. The disk-full test needs"
            " root (or CAP_SYS_ADMIN) to mount a small filesystem it can fill; run the suite"
            " as root or in a container that allows mount"
        )
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        yield mountpoint
    finally:
        _umount(mountpoint)


def fill(directory: Path) -> Path:
    """Write one file in `directory` until the filesystem is full; return it."""
    filler = directory / "filler"
    chunk = b"\0" * (64 * 1024)
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError:
            pass
    # the last partial chunk: fill the remaining bytes one small write at a time
    with filler.open("ab", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 512)
        except OSError:
            pass
    return filler

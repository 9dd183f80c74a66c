"""A real PostgreSQL server for tests: initdb in a temporary directory, started on a free
port of 127.0.0.1 and a private socket directory, stopped (and deleted) after.

Debian's `postgresql` package provides the binaries (`scripts/setup dev` installs it);
nothing of the system's own cluster is used. PostgreSQL refuses to run as root, so as
root the server runs as the `postgres` user the package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

ROLE = "hive"
"""The role the daemons log in as (not a superuser: what an operator would create)."""


def pg_bin() -> Path:
    """The newest installed PostgreSQL's bin directory."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed: `apt-get install postgresql` (scripts/setup dev does)"
        )
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One PostgreSQL server; `database()` makes a fresh database for one test."""

    def __init__(self, *, fsync: bool = False) -> None:
        self.bin = pg_bin()
        self.root = Path(tempfile.mkdtemp(prefix="hive-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sock"
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self.password_file = self.root / "password"
        self.fsync = fsync
        self._user: str | None = "postgres" if os.geteuid() == 0 else None

    def _run(self, *argv: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(a) for a in argv]
        if self._user is not None:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> PgServer:
        self.sockets.mkdir(parents=True)
        self.password_file.write_text(self.password + "\n")
        self.password_file.chmod(0o600)
        if self._user is not None:
            info = pwd.getpwnam(self._user)
            os.chown(self.root, info.pw_uid, info.pw_gid)
            os.chown(self.sockets, info.pw_uid, info.pw_gid)
        self.root.chmod(0o755)
        self._run(
            self.bin / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
            "--no-sync", "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.sockets}'\n"
                f"fsync = {'on' if self.fsync else 'off'}\nmax_connections = 200\n"
                "password_encryption = 'scram-sha-256'\n"
            )
        # Superuser by the private socket only; the daemons' role by password over TCP.
        (self.data / "pg_hba.conf").write_text(
            "local all postgres trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )
        self.start_server()
        with self.admin() as conn:
            conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{self.password}'")
        return self

    def start_server(self) -> None:
        self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.root / "log", "-w", "start")

    def stop_server(self, mode: str = "fast") -> None:
        """Stop the server (`immediate` is a crash: no checkpoint, recovery at start)."""
        self._run(self.bin / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check=False)

    def admin(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=str(self.sockets), port=self.port, user="postgres", dbname=dbname,
            autocommit=True,
        )  # fmt: skip

    def database(self) -> str:
        """A new empty database owned by the daemons' role; its URL (no password)."""
        name = "t_" + secrets.token_hex(6)
        deadline = time.monotonic() + 30
        while True:
            try:
                with self.admin() as conn:
                    conn.execute(f"CREATE DATABASE {name} OWNER {ROLE}")
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)  # the server is restarting (a fault test)
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self.stop_server("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

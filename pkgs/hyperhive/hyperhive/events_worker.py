"""Trim one agent's events db, confined to its state directory (docs/security.md).

Run by the daemon's retention sweep as ``python -m hyperhive.events_worker FD ...`` with
FD an open descriptor of the agent's state directory. The file is the agent's: it may be
a symlink, a FIFO, or a database with triggers or views that run on our DELETE. So:

- the worker changes into FD and chroots there (when it is root), so no path it opens,
  the db or sqlite's ``-wal``/``-shm``/``-journal`` next to it, can leave the directory;
  then it drops every capability (bounding set included) and sets no_new_privs: uid 0
  still owns the (root-owned) events files, but cannot chroot out, mount, ptrace the
  daemon or override file permissions;
- the db and those side files must be regular files (lstat, never followed), else it is
  skipped;
- ``trusted_schema`` is off and a db with any trigger or view is skipped, with the reason;
- a progress handler aborts any statement after the time budget, and the daemon kills
  the worker if it is still alive a little later (a FIFO swapped in after the checks).

Only the standard library is imported: the worker must not import anything after chroot.
It prints one JSON object: ``{"deleted": n}`` or ``{"skipped": reason}``.
"""

from __future__ import annotations

import ctypes
import json
import os
import sqlite3
import stat
import sys
import time

EVENTS_DB = "hyperhive-events.sqlite"
SIDE_FILES = ("-wal", "-shm", "-journal")
# Progress handler granularity: sqlite VM instructions between deadline checks.
PROGRESS_STEPS = 10_000


class Refused(Exception):
    """The file is not one we sweep; the message says why."""


def check_regular(name: str) -> bool:
    """Whether `name` is a regular file (not followed); Refused for anything else."""
    try:
        st = os.lstat(name)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a regular file"
        raise Refused(f"{name} is {kind}")
    return True


def trim(keep_days: int, keep_rows: int, now: float, budget: float) -> int:
    """Delete old events in ./hyperhive-events.sqlite within `budget` seconds."""
    if not check_regular(EVENTS_DB):
        return 0
    for suffix in SIDE_FILES:
        check_regular(EVENTS_DB + suffix)
    deadline = time.monotonic() + budget
    conn = sqlite3.connect(EVENTS_DB, timeout=min(5.0, budget), isolation_level=None)
    try:
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), PROGRESS_STEPS)
        conn.execute("PRAGMA trusted_schema=OFF")
        conn.execute("PRAGMA cell_size_check=ON")
        # Checked inside the write transaction: no other writer can add a trigger between
        # the check and the DELETEs.
        conn.execute("BEGIN IMMEDIATE")
        code = conn.execute(
            "SELECT type, name FROM sqlite_master WHERE type IN ('trigger', 'view') LIMIT 1"
        ).fetchone()
        if code is not None:
            shown = str(code[1])[:40]
            raise Refused(f"it has a {code[0]} ({shown!r}); the sweep runs no agent code")
        cutoff = now - keep_days * 86400
        deleted = conn.execute("DELETE FROM events WHERE ts < ?", (cutoff,)).rowcount
        deleted += conn.execute(
            "DELETE FROM events WHERE id NOT IN"
            " (SELECT id FROM events ORDER BY id DESC LIMIT ?)",
            (keep_rows,),
        ).rowcount
        conn.execute("COMMIT")
        return deleted
    except sqlite3.OperationalError as exc:
        if time.monotonic() > deadline:
            raise Refused(f"it took longer than {budget:g} s") from exc
        raise
    finally:
        conn.close()


PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
CAP_LAST_POSSIBLE = 63


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def drop_capabilities() -> None:
    """Drop every capability of this process for good (bounding set, then the sets)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(CAP_LAST_POSSIBLE + 1):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # EINVAL past the kernel's last: fine
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()  # all zero
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def confine(fd: int) -> None:
    """Make the directory `fd` our working directory and, as root, our root; then drop
    every capability."""
    os.fchdir(fd)
    os.close(fd)
    if os.geteuid() == 0:
        os.chroot(".")
        os.chdir("/")
        drop_capabilities()


def effective_capabilities(status_fd: int) -> str:
    """CapEff of this process, read through a /proc/self/status fd opened before chroot."""
    text = os.pread(status_fd, 8192, 0).decode(errors="replace")
    return next((line.split()[1] for line in text.splitlines() if line.startswith("CapEff:")), "")


def main(argv: list[str]) -> int:
    """Entry point: FD KEEP_DAYS KEEP_ROWS NOW BUDGET."""
    fd, keep_days, keep_rows = int(argv[0]), int(argv[1]), int(argv[2])
    now, budget = float(argv[3]), float(argv[4])
    status_fd = os.open("/proc/self/status", os.O_RDONLY | os.O_CLOEXEC)
    confine(fd)
    result: dict[str, object] = {"cap_eff": effective_capabilities(status_fd)}
    os.close(status_fd)
    try:
        result["deleted"] = trim(keep_days, keep_rows, now, budget)
    except Refused as exc:
        result["skipped"] = str(exc)
    except sqlite3.Error as exc:
        result["skipped"] = f"sqlite: {str(exc)[:200]!r}"  # may quote the agent's schema
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

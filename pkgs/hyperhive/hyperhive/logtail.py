"""Reading the end of a growing log file (the harness's own log; the daemon's log viewer).

What an agent's processes printed is untrusted: the file is opened without following a
link (and must be a regular file), and each line comes back without control characters
(terminal escapes) and capped at MAX_LINE_CHARS.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from hyperhive import safefs

# Read about this many bytes per wanted line from the end; long lines just give fewer.
BYTES_PER_LINE = 400
MAX_LINE_CHARS = 2000


def tail_file(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of `path`, read from its end (empty if it cannot be read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return []
        size = os.lseek(fd, 0, os.SEEK_END)
        os.lseek(fd, max(0, size - BYTES_PER_LINE * lines), os.SEEK_SET)
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(BYTES_PER_LINE * lines)
    except OSError:
        return []
    finally:
        os.close(fd)
    return [
        safefs.bounded(line, MAX_LINE_CHARS)
        for line in data.decode(errors="replace").splitlines()[-lines:]
    ]

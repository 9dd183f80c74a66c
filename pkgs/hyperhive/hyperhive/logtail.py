"""Reading the end of a growing log file (the harness's own log; the daemon's log viewer)."""

from __future__ import annotations

import os
from pathlib import Path

# Read about this many bytes per wanted line from the end; long lines just give fewer.
BYTES_PER_LINE = 400


def tail_file(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of `path`, read from its end (empty if it cannot be read)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - BYTES_PER_LINE * lines))
            data = handle.read()
    except OSError:
        return []
    return data.decode(errors="replace").splitlines()[-lines:]

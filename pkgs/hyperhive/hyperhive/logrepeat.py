"""Repeated identical log records are written once, then counted (issue 13).

A hostile agent can make the same warning fire thousands of times a second (a flood of
connections, an exhausted descriptor table). `RepeatFilter` passes the first record of each
kind, swallows identical ones for `window` seconds and then passes the next one with how
many it swallowed: the log stays readable and bounded, and nothing is hidden for good.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 60.0
"""How long identical records are counted instead of written."""
MAX_KINDS = 4096
"""Distinct records remembered at once; the oldest are forgotten beyond it."""


@dataclass
class _Seen:
    since: float
    swallowed: int = 0


class RepeatFilter(logging.Filter):
    """Pass a record unless an identical one (logger, level, text, exception) passed less
    than `window` seconds ago; the next one passed says how many were swallowed."""

    def __init__(
        self,
        window: float = WINDOW_SECONDS,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.window = window
        self.level = level
        self._clock = clock
        self._seen: dict[tuple[str, int, str, str], _Seen] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return True
        exc = record.exc_info[1] if record.exc_info else None
        key = (record.name, record.levelno, record.getMessage(), repr(exc))
        now = self._clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen.since < self.window:
            seen.swallowed += 1
            return False
        if seen is not None and seen.swallowed:
            record.msg = (
                f"{record.getMessage()} (and {seen.swallowed} identical message(s) in the"
                f" {self.window:.0f} s before, not written)"
            )
            record.args = None
        self._seen.pop(key, None)
        self._seen[key] = _Seen(now)
        if len(self._seen) > MAX_KINDS:
            del self._seen[next(iter(self._seen))]
        return True


def install(logger: logging.Logger | None = None) -> int:
    """Give every handler of `logger` (default: the root logger) its own RepeatFilter, so
    that records of every logger (asyncio's accept errors included) pass through one.
    Idempotent; returns how many handlers got one now."""
    target = logger or logging.getLogger()
    added = 0
    for handler in target.handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter())
            added += 1
    return added

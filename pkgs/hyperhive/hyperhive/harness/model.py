"""Model names, and the model file read as untrusted input (docs/security.md).

The model file (``/state/hyperhive-model``) lives in the agent's state directory, which
the agent itself (root in its container) and, through older binds, the manager can write.
Its content becomes ``claude --model <value>``, so it is read like any hostile input: not
followed if it is a symlink, never opened blocking (a FIFO), at most MAX_MODEL_FILE bytes,
and used only when it is a model name claude documents; otherwise the default is used and
the harness says so once per distinct bad content.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

# Aliases claude 2.1.330 documents (`claude --help`: "an alias for the latest model (e.g.
# 'fable', 'opus', or 'sonnet')") plus haiku, the hive's default; or a full model name.
MODEL_ALIASES = ("haiku", "sonnet", "opus", "fable")
FULL_MODEL_RE = re.compile(r"claude-[a-z0-9][a-z0-9.-]{2,80}(\[1m\])?")
FALLBACK_MODEL = "haiku"
# A valid name is under 100 bytes; anything longer is not read further.
MAX_MODEL_FILE = 256


def is_model_name(name: str) -> bool:
    """Whether claude takes `name` as a model (an alias or a full claude-* name)."""
    return name in MODEL_ALIASES or FULL_MODEL_RE.fullmatch(name) is not None


def _read_bounded(path: Path) -> str | None:
    """The file's text (at most MAX_MODEL_FILE bytes), None if absent; ValueError if unfit."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"cannot be opened without following a link ({exc.strerror})") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("is not a regular file")
        data = os.read(fd, MAX_MODEL_FILE + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_MODEL_FILE:
        raise ValueError(f"is longer than {MAX_MODEL_FILE} bytes")
    return data.decode("utf-8", errors="replace")


class ModelFile:
    """Reads the model file at each turn; logs a rejected content once, not every turn."""

    def __init__(self, path: Path, default: str) -> None:
        self.path = path
        if not is_model_name(default):
            logger.warning(
                "default model %r (HIVE_DEFAULT_MODEL) is not a model name; using %s",
                default[:60],
                FALLBACK_MODEL,
            )
            default = FALLBACK_MODEL
        self.default = default
        self._last_rejected: str | None = None

    def read(self) -> str:
        """The model for the next turn: the file's if it is a valid name, else the default."""
        try:
            text = _read_bounded(self.path)
        except (ValueError, OSError) as exc:
            self._reject(f"{self.path} {exc}")
            return self.default
        if text is None or not text.strip():
            return self.default
        name = text.strip()
        if not is_model_name(name):
            self._reject(f"{self.path} holds {name[:60]!r}, not a model name")
            return self.default
        self._last_rejected = None
        return name

    def _reject(self, reason: str) -> None:
        if reason != self._last_rejected:
            logger.warning("model file ignored: %s; using the default %s", reason, self.default)
            self._last_rejected = reason

"""The operator secret and the browser keys derived from it (docs/security.md).

The secret is 32 random bytes in ``<state_dir>/operator-secret`` (0600), created at first
start. Browser keys are HMAC-SHA256 of the secret and a label, base64url without padding:

- the dashboard key (label ``dashboard``) opens every dashboard route;
- the page key of an agent (label ``webui:<name>``) opens that agent's web UI only, and is
  handed to that agent's harness alone, in its own socket directory (``/run/hive/web-key``).

An agent can read its own page key, never the secret, so it cannot compute another agent's
key or the dashboard's. Rotating the secret changes every key: every browser session ends.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

from hyperhive import safefs

logger = logging.getLogger(__name__)

SECRET_BYTES = 32
KEY_FILE = "web-key"
"""The page key's file name in an agent's socket directory (its /run/hive)."""


class OperatorSecret:
    """The operator secret on disk and in memory; derives the browser keys."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._secret = self._load_or_create()

    def _load_or_create(self) -> bytes:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return self._write(secrets.token_bytes(SECRET_BYTES))
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise RuntimeError(f"{self.path} is not a regular file: remove it and restart")
            if info.st_mode & 0o077:
                # Someone widened it; narrow it again rather than keep serving a shared secret.
                os.fchmod(f.fileno(), 0o600)
                logger.warning("%s was readable by others; set back to 0600", self.path)
            data = f.read(SECRET_BYTES + 1)
        if len(data) != SECRET_BYTES:
            raise RuntimeError(
                f"{self.path} is not a hyperhive operator secret ({len(data)} bytes):"
                " remove it (every browser session ends) and restart"
            )
        return data

    def _write(self, secret: bytes) -> bytes:
        """Store `secret` atomically with mode 0600 (a temp file, fsync, rename)."""
        # The state dir is the daemon's own (no container binds it): its parent is trusted.
        root = self.path.parent
        root.mkdir(parents=True, exist_ok=True)
        safefs.write_atomic(root, self.path, secret, mode=0o600)
        return secret

    def rotate(self) -> None:
        """Replace the secret: every dashboard and page key changes at once."""
        self._secret = self._write(secrets.token_bytes(SECRET_BYTES))
        logger.info("operator secret rotated: every browser session ended")

    def _derive(self, label: str) -> str:
        digest = hmac.new(self._secret, label.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def dashboard_key(self) -> str:
        """The key the operator's browser sends to the dashboard."""
        return self._derive("dashboard")

    def page_key(self, name: str) -> str:
        """The key of `name`'s web UI (`name` validated by the caller, or the manager)."""
        return self._derive(f"webui:{name}")

    def is_dashboard_key(self, presented: str) -> bool:
        """Constant-time check of a presented dashboard key."""
        return hmac.compare_digest(presented.encode(), self.dashboard_key().encode())

"""What crash_watch last saw of each agent's login: the memory its news is made from.

Three writers, one reader: the start-up reconcile takes a first look at every agent (so a
login between start-up and the first pass is news), a spawn marks the agent fresh (its
first look may say `needs_login`), a destroy forgets it (a revive starts over); the watch
(`lifecycle/watch.py`) looks at each pass.
"""

from __future__ import annotations


class LoginSightings:
    """The login each agent had at the last look, and which agents were spawned since."""

    def __init__(self) -> None:
        self._seen: dict[str, bool] = {}
        self._fresh: set[str] = set()

    def seen(self, name: str, logged_in: bool) -> None:
        """Record a look that makes no news (the start-up reconcile's)."""
        self._seen[name] = logged_in

    def spawned(self, name: str) -> None:
        """`name` was just spawned: its first look is news if it has no login."""
        self._fresh.add(name)

    def forget(self, name: str) -> None:
        """`name` was destroyed: its next look is a first look."""
        self._seen.pop(name, None)

    def look(self, name: str, logged_in: bool) -> tuple[bool | None, bool]:
        """Record a look; (the login seen before, None at a first look; spawned since)."""
        before = self._seen.get(name)
        self._seen[name] = logged_in
        fresh = name in self._fresh
        self._fresh.discard(name)
        return before, fresh

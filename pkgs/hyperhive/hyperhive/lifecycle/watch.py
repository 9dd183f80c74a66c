"""crash_watch (SPEC §10): every `crash_watch_seconds`, what runs against what the table says.

An agent in state `running` whose container does not run becomes `failed` (the manager gets
`container_crash`); a `failed` one found running is `running` again. An agent a verb holds
is left alone (the verb's own state stands). Each pass also reports login changes
(`needs_login` / `logged_in`, from `lifecycle/logins.py`'s memory) and, once per agent, a
build from another hyperhive flake (`needs_update`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from hyperhive.agents.names import MANAGER, AgentName
from hyperhive.agents.registry import Registry
from hyperhive.agents.store import AgentState
from hyperhive.broker.service import Broker
from hyperhive.errors import HyperhiveError
from hyperhive.lifecycle.service import Lifecycle
from hyperhive.settings import Settings

logger = logging.getLogger(__name__)


class CrashWatch:
    """Compares, at each pass, the agent table with what runs, and tells the manager."""

    def __init__(
        self, settings: Settings, registry: Registry, broker: Broker, lifecycle: Lifecycle
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._broker = broker
        self._lifecycle = lifecycle
        self._stale_told: set[str] = set()

    async def check_once(self) -> None:
        """One pass: crashes, login changes, staleness."""
        lifecycle = self._lifecycle
        for record in self._registry.local():
            if not record.live or lifecycle.busy(record.name):
                continue
            name = AgentName(record.name)
            running = await lifecycle.backend.is_running(lifecycle.paths(name))
            if lifecycle.busy(name):
                continue  # a verb started while we looked
            current = self._registry.get(name)
            if current.state is AgentState.RUNNING and not running:
                logger.warning("%s: container stopped without an operator verb", name)
                await self._registry.set_state(name, AgentState.FAILED)
                await self._broker.system_event(MANAGER, "container_crash", agent=name)
            elif current.state is AgentState.FAILED and running:
                await self._registry.set_state(name, AgentState.RUNNING)
            await self._check_login(name)
            await self._check_stale(name)

    async def _check_stale(self, name: AgentName) -> None:
        # Told once while stale; a rebuild makes it current, and the next pass forgets it
        # (the flake it is compared with is the daemon's own: it does not change meanwhile).
        if not self._lifecycle.is_stale(name):
            self._stale_told.discard(name)
        elif name not in self._stale_told:
            self._stale_told.add(name)
            await self._broker.system_event(MANAGER, "needs_update", agent=name)

    async def _check_login(self, name: AgentName) -> None:
        now = self._lifecycle.logged_in(name)
        before, fresh = self._lifecycle.logins.look(name, now)
        if before != now:
            # The dashboard's "needs login" badge comes or goes (a first look too: the row
            # drawn at spawn said "needs login", and the login may beat this pass).
            self._registry.touch(name)
        if name == MANAGER:
            return  # the manager could not read its own needs_login without a login
        if before is None:
            # First look: news only for an agent spawned since the daemon started.
            if fresh and not now:
                await self._broker.system_event(MANAGER, "needs_login", agent=name)
            return
        if before != now:
            # The news replaces its opposite still waiting in the manager's inbox.
            await self._broker.system_event(
                MANAGER,
                "logged_in" if now else "needs_login",
                supersedes=("needs_login", "logged_in"),
                agent=name,
            )

    async def watch_forever(self, on_tick: Callable[[], Awaitable[object]] | None = None) -> None:
        """Every `crash_watch_seconds`, one pass, then `on_tick`."""
        while True:
            await asyncio.sleep(self._settings.crash_watch_seconds)
            try:
                await self.check_once()
                if on_tick is not None:
                    await on_tick()
            except HyperhiveError as exc:
                # e.g. the database away for a moment: one line, the next pass tries again
                logger.warning("crash_watch pass failed: %s", exc.message)
            except Exception:
                logger.exception("crash_watch pass failed")

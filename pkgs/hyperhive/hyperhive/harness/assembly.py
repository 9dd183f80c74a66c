"""``Harness``: one agent's hive files, event store, bus and turn loop wired together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hyperhive.harness.events import EventBus
from hyperhive.harness.files import write_hive_files
from hyperhive.harness.loop import TurnLoop
from hyperhive.harness.store import EventStore
from hyperhive.settings import HarnessSettings
from hyperhive.wire.roles import Role


@dataclass
class Harness:
    """One agent's harness: what the web UI needs a handle on (bus, loop, store)."""

    settings: HarnessSettings
    role: Role
    bus: EventBus
    loop: TurnLoop
    store: EventStore | None

    @classmethod
    def open(cls, settings: HarnessSettings, role: Role, mcp_command: Sequence[str]) -> Harness:
        """Write the hive files and open the store (or run without one). Needs a loop."""
        files = write_hive_files(role, settings, mcp_command)
        store = EventStore.open(settings.events_path)
        bus = EventBus(store, store.next_id() if store else 1)
        if store is not None:
            store.start()
        return cls(settings, role, bus, TurnLoop(settings, files, bus, role=role), store)

    async def close(self) -> None:
        """Flush and close the store."""
        if self.store is not None:
            await self.store.close()

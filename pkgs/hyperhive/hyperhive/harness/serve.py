"""``serve``: wire the hive files, event store, bus and turn loop together and run."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass

from hyperhive.harness.events import EventBus
from hyperhive.harness.files import write_hive_files
from hyperhive.harness.loop import TurnLoop
from hyperhive.harness.roles import Role
from hyperhive.harness.store import EventStore
from hyperhive.settings import HarnessSettings

logger = logging.getLogger(__name__)


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


async def serve(settings: HarnessSettings, role: Role, mcp_command: Sequence[str]) -> None:
    """Run the turn loop and the web UI until SIGTERM/SIGINT; a running claude gets SIGINT."""
    # Imported here: the web UI imports this module (for the Harness type).
    from hyperhive.webui.server import start_webui, stop_webui

    harness = Harness.open(settings, role, mcp_command)
    logger.info(
        "%s %s: socket %s, events %s",
        role.value,
        settings.agent_name,
        settings.socket,
        "on" if harness.store else "off (no-store mode)",
    )
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    # The web UI binds in the background: its retry loop (~22 s) must not delay turns.
    webui = asyncio.create_task(start_webui(harness), name="webui")
    try:
        await harness.loop.run()
    except asyncio.CancelledError:
        logger.info("stopping")
    finally:
        await stop_webui(webui)
        await harness.close()

"""Start the web UI next to the turn loop: the port, the bind retry loop, failure isolation."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from hyperhive.http import BoundApp, serve_app
from hyperhive.ports import agent_port
from hyperhive.webui.app import create_app

if TYPE_CHECKING:
    from hyperhive.harness.assembly import Harness

logger = logging.getLogger(__name__)


async def start_webui(harness: Harness, port: int | None = None) -> BoundApp | None:
    """Serve the web UI; on a bind failure log it and return None (the turn loop goes on)."""
    settings = harness.settings
    if port is None:
        port = settings.web_port or agent_port(settings.agent_name)
    try:
        bound = await serve_app(create_app(harness), settings.web_host, port)
    except OSError as exc:
        # The agent still works without its web UI; the operator sees this in the journal.
        logger.error(
            "web UI not started on %s:%d: %s — the agent keeps working; free the port and"
            " restart the harness to get the web UI back",
            settings.web_host,
            port,
            exc.strerror or exc,
        )
        return None
    logger.info("web UI on %s", bound.url)
    return bound


async def stop_webui(task: asyncio.Task[BoundApp | None]) -> None:
    """Stop a web UI started as a task (cancel it if it is still binding)."""
    if not task.done():
        task.cancel()
    results = await asyncio.gather(task, return_exceptions=True)
    bound = results[0]
    if isinstance(bound, BoundApp):
        await bound.stop()

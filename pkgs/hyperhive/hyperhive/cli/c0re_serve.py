"""``hive-c0re serve``, the daemon binary's composition root: the `Hive` and its dashboard.

Above both: the dashboard takes the daemon's services through its own interface
(`HiveServices`, which `Hive` satisfies) and never imports the daemon, so the module that
starts the two together and hands the one to the other sits over them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import sys
from urllib.parse import urlsplit

from hyperhive.agents.names import MANAGER
from hyperhive.daemon import Hive
from hyperhive.dashboard import start_dashboard
from hyperhive.http import BoundApp
from hyperhive.ports import agent_port
from hyperhive.settings import Settings
from hyperhive.wire.responses import NEEDS_LOGIN_HINT

logger = logging.getLogger(__name__)


async def serve(settings: Settings, *, print_login_url: bool = False) -> None:
    """Run the daemon until SIGINT or SIGTERM.

    `print_login_url` prints the dashboard's login URL (it holds the operator's key) on
    stdout, for an operator's terminal; it never goes to the log.
    """
    hive = Hive(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await hive.start()
    dashboard: BoundApp | None = None
    try:
        dashboard = await start_dashboard(hive)
    except OSError as exc:
        # Agents keep working without the page, and the CLI still has operator authority.
        logger.error("dashboard not started: %s", exc)
    where = dashboard.url if dashboard else "not running"
    if dashboard is not None:
        hive.dashboard_url = _browser_url(dashboard.url, settings.dashboard_host)
    print(f"hive-c0re: ready — admin socket {settings.host_socket}, dashboard {where}", flush=True)
    if dashboard is not None:
        if print_login_url and sys.stdout.isatty():
            print(f"hive-c0re: log the dashboard in: {hive.login_url()}", flush=True)
        else:
            print("hive-c0re: `hive-c0re login` prints the dashboard's login URL", flush=True)
    manager_page = f"http://127.0.0.1:{agent_port(MANAGER)}/"
    manager = hive.registry.find(MANAGER)
    if manager is not None and not hive.registry.is_local(manager):
        print(f"hive-c0re: the hive's manager runs on host {manager.host}", flush=True)
    elif hive.lifecycle.logged_in(MANAGER):
        print(f"hive-c0re: the manager's page is {manager_page}", flush=True)
    else:
        print(
            f"hive-c0re: the manager ({manager_page}) {NEEDS_LOGIN_HINT}",
            flush=True,
        )
    try:
        await stop.wait()
    finally:
        logger.info("hive-c0re shutting down")
        if dashboard is not None:
            await dashboard.stop()  # closes the SSE streams first
        await hive.stop()


def _browser_url(bound: str, host: str) -> str:
    """The URL a browser on this machine uses: a wildcard bind is reached by loopback."""
    try:
        unspecified = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return bound
    return f"http://127.0.0.1:{urlsplit(bound).port}" if unspecified else bound

"""hive-ag3nt / hive-m1nd: ``serve`` runs the turn loop, ``mcp`` the MCP stdio server."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from hyperhive.settings import HarnessSettings
from hyperhive.wire.roles import Role

logger = logging.getLogger(__name__)

BINARIES = {"hive-ag3nt": Role.AGENT, "hive-m1nd": Role.MANAGER}


def mcp_command() -> list[str]:
    """How claude should start our MCP server: this very binary when we were run as one."""
    exe = Path(sys.argv[0])
    if exe.name in BINARIES and exe.is_file():
        return [str(exe.absolute())]
    return [sys.executable, "-m", "hyperhive.cli.harness"]


def parser(default_role: Role) -> argparse.ArgumentParser:
    """The argument parser; the role defaults to the binary's."""
    p = argparse.ArgumentParser(
        description="hyperhive agent harness (configuration: HYPERHIVE_* environment)"
    )
    p.add_argument(
        "--role", type=Role, choices=list(Role), default=default_role, help="agent or manager"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the turn loop (long-poll the broker, one claude per turn)")
    sub.add_parser("mcp", help="run the hyperhive MCP stdio server (started by claude)")
    return p


def main(argv: Sequence[str] | None = None, default_role: Role = Role.AGENT) -> int:
    """Entry point shared by both binaries."""
    args = parser(default_role).parse_args(argv)
    # stderr only: on `mcp`, stdout is the protocol. No timestamps: journald adds them.
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    settings = HarnessSettings()
    if args.command == "mcp":
        from hyperhive.mcp_server.tools import run_stdio

        run_stdio(args.role, settings.socket)
        return 0
    asyncio.run(serve(settings, args.role, mcp_command()))
    return 0


async def serve(settings: HarnessSettings, role: Role, mcp_command: Sequence[str]) -> None:
    """Run the turn loop and the web UI until SIGTERM/SIGINT; a running claude gets SIGINT.

    This binary's composition root: the web UI is built on the harness, so the two are
    started together here, above both. Imported here: `mcp` does not pay for them.
    """
    from hyperhive.harness.assembly import Harness
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


def main_agent() -> int:
    """hive-ag3nt."""
    return main(default_role=Role.AGENT)


def main_manager() -> int:
    """hive-m1nd."""
    return main(default_role=Role.MANAGER)


if __name__ == "__main__":
    sys.exit(main())

"""The socket re-creation race (docs/security.md "Symlinks and the daemon's own files").

An agent can write its socket directory (it is its /run/hive). While the daemon re-creates
the socket (a restart or rebuild re-registers it), the agent swaps the socket path for a
symlink to a host file, as fast as it can. A chmod by path after bind would then set the
host file to the socket's mode (a setuid binary losing its setuid bit); the daemon must
never change anything but its own socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import threading
from pathlib import Path

from hivetest import call, running_hive
from hyperhive.agents.names import AgentName
from hyperhive.wire.roles import Role

ROUNDS = 300


def swapper(sock: Path, target: Path, stop: threading.Event) -> None:
    """Replace `sock` with a symlink to `target`, over and over (rename is atomic)."""
    link = sock.with_name("swap.lnk")
    while not stop.is_set():
        with contextlib.suppress(OSError):
            link.unlink(missing_ok=True)
            link.symlink_to(target)
            os.rename(link, sock)


async def test_swapping_the_socket_for_a_symlink_while_it_is_recreated_changes_no_host_file(
    tmp_path: Path,
) -> None:
    target = tmp_path / "setuid-standin"
    target.write_text("#!/bin/sh\n")
    target.chmod(0o4755)
    async with running_hive(tmp_path / "hive") as hive:
        await hive.lifecycle.spawn("alice")
        sock = hive.lifecycle.paths(AgentName("alice")).socket
        stop = threading.Event()
        thread = threading.Thread(target=swapper, args=(sock, target, stop), daemon=True)
        thread.start()
        rounds = 0
        try:
            for rounds in range(1, ROUNDS + 1):  # noqa: B007
                await hive.register_socket(AgentName("alice"), Role.AGENT)
                if stat.S_IMODE(target.stat().st_mode) != 0o4755:
                    break
        finally:
            stop.set()
            thread.join(10)
        mode = stat.S_IMODE(target.stat().st_mode)
        assert mode == 0o4755, f"host file set to {mode:o} on round {rounds}"
        assert target.read_text() == "#!/bin/sh\n"
        # The daemon still answers, and a re-created socket works again.
        assert (await asyncio.wait_for(call(hive.settings.host_socket, "list"), 10))[
            "kind"
        ] != "err"
        await hive.register_socket(AgentName("alice"), Role.AGENT)
        found = os.lstat(sock)
        assert stat.S_ISSOCK(found.st_mode)
        assert stat.S_IMODE(found.st_mode) == 0o660
        assert (await asyncio.wait_for(call(sock, "whoami"), 10))["kind"] != "err"


async def test_stop_removes_only_its_own_socket(tmp_path: Path) -> None:
    async with running_hive(tmp_path / "hive") as hive:
        await hive.lifecycle.spawn("alice")
        sock = hive.lifecycle.paths(AgentName("alice")).socket
        sock.unlink()
        sock.write_text("the agent's own file\n")
        await hive.unregister_socket(AgentName("alice"))
        assert sock.read_text() == "the agent's own file\n"

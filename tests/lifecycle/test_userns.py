"""User-namespaced nspawn containers (docs/security.md, "User namespaces").

A real systemd-nspawn container: its root is uid 0 inside and an unprivileged uid on the
host, and the agent's normal work still works through the idmapped binds: a turn against
the API stand-in, notes in /state owned by host root, its events file swept by the daemon.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from hivetest import call
from hyperhive.daemon import Hive
from hyperhive.lifecycle.names import AgentName
from hyperhive.lifecycle.nspawn import NspawnBackend, binds_for, container_root
from hyperhive.retention import events_vacuum
from lifecycle.support import Router, until
from lifecycle.test_nspawn import nspawn_hive  # noqa: F401 - the fixture
from standin.api import Text, ToolCall

PROBE = (
    "id -u > /state/ids.txt; cat /proc/self/uid_map >> /state/ids.txt;"
    " echo 'notes of ns-uid' > /state/notes.md;"
    " for p in /etc/owned /usr/owned /owned; do"
    ' if touch "$p" 2>/dev/null; then echo "wrote $p"; else echo "refused $p"; fi; done'
    " > /state/root.txt; echo probed"
)


def host_uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


async def test_container_root_is_an_unprivileged_host_uid_and_the_agents_work_still_works(
    nspawn_hive: tuple[Hive, Router],  # noqa: F811 - the fixture
) -> None:
    hive, router = nspawn_hive
    router.add("ns-uid", "probe your ids", ToolCall("Bash", {"command": PROBE}), Text("probed"))
    host = hive.settings.host_socket
    assert (await call(host, "spawn", name="ns-uid"))["kind"] == "ok"
    sent = await call(host, "send", to="ns-uid", body="please probe your ids")
    assert sent["kind"] == "ok", sent
    (message_id,) = sent["ids"]

    def acked() -> bool:
        return any(r.id == message_id and r.acked for r in hive.broker.recent("ns-uid", 50))

    await until(acked, 150, "the probe turn acked")
    assert router.pending("ns-uid") == 0
    paths = hive.lifecycle.paths(AgentName("ns-uid"))

    # uid 0 inside, mapped to a non-zero host uid
    inside_uid, uid_map, *_ = (paths.state / "ids.txt").read_text().splitlines()
    assert inside_uid == "0"
    inside, outside, count = (int(v) for v in uid_map.split())
    assert (inside, count) == (0, 65536)
    assert outside != 0
    backend = hive.lifecycle.backend
    assert isinstance(backend, NspawnBackend)
    leader = backend.leader(paths)
    assert leader is not None
    assert host_uid_of(leader) == outside  # the harness, seen from the host

    # notes in /state: visible on the host, owned by host root through the idmapped bind
    notes = paths.state / "notes.md"
    assert notes.read_text() == "notes of ns-uid\n"
    assert notes.stat().st_uid == 0
    # the small root is read-only and /usr is the host's, read-only
    assert (paths.state / "root.txt").read_text().split() == [
        "refused", "/etc/owned", "refused", "/usr/owned", "refused", "/owned",
    ]  # fmt: skip
    assert not Path("/usr/owned").exists()

    # its events file (written by the harness inside) is swept by the daemon
    events = paths.events_db
    assert events.stat().st_uid == 0
    conn = sqlite3.connect(events, timeout=10)
    conn.execute(
        "INSERT INTO events (ts, kind, payload_json) VALUES (?, 'stream', '{}')",
        (time.time() - 30 * 86400,),
    )
    conn.commit()
    conn.close()
    assert await events_vacuum(hive.settings) >= 1
    conn = sqlite3.connect(events, timeout=10)
    old = conn.execute("SELECT count(*) FROM events WHERE ts < ?", (time.time() - 86400,))
    assert old.fetchone() == (0,)
    conn.close()

    # the small root is the daemon's, outside every bound tree, and goes with the container
    root = container_root(hive.settings, paths.name)
    assert root.is_dir()
    assert root.stat().st_uid == 0
    assert not any(root.is_relative_to(b.host) for b in binds_for(hive.settings, paths))
    assert (await call(host, "destroy", name="ns-uid"))["kind"] == "ok"
    assert not root.exists()
    assert notes.read_text() == "notes of ns-uid\n"

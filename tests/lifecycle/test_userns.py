"""User-namespaced nspawn containers (docs/security.md, "User namespaces").

A real systemd-nspawn container: its root is uid 0 inside and an unprivileged uid on the
host, and the agent's normal work still works through the idmapped binds: a turn against
the API stand-in, notes in /state owned by host root, its events file swept by the daemon.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path

from hivetest import call, make_settings
from hyperhive.agents.names import MANAGER, AgentName
from hyperhive.agents.paths import AgentPaths
from hyperhive.daemon import Hive
from hyperhive.lifecycle.nspawn import (
    NspawnBackend,
    binds_for,
    container_root,
    nspawn_argv,
    prepare_root,
    read_only_paths,
)
from hyperhive.retention import events_vacuum
from hyperhive.settings import BackendKind
from lifecycle.support import Router, require_nspawn, until
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
    # An id far from the harness's own sequence: it writes `INSERT OR REPLACE` with its next
    # id, which would otherwise overwrite this old row with a fresh one before the sweep.
    conn.execute(
        "INSERT INTO events (id, ts, kind, payload_json) VALUES (?, ?, 'stream', '{}')",
        (10**9, time.time() - 30 * 86400),
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


def test_every_writable_bind_of_the_manager_works_through_the_user_namespace(
    tmp_path: Path,
) -> None:
    """The manager's layout in a real container: its root writes every writable bind,
    git commits in a repo the host's root made, and the host sees host-root files."""
    require_nspawn()
    settings = make_settings(tmp_path, backend=BackendKind.NSPAWN)
    paths = AgentPaths.of(settings, MANAGER)
    for trusted in (settings.state_dir, settings.run_dir):
        trusted.mkdir(parents=True)  # the daemon's own roots (Hive makes them)
    paths.create()
    binds = binds_for(settings, paths)
    for bind in binds:
        Path(bind.host).mkdir(parents=True, exist_ok=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@h"]
    repo = paths.state / "repo"
    subprocess.run([*git, "init", "-q", str(repo)], check=True)
    (repo / "agent.nix").write_text("{ }\n")
    subprocess.run([*git, "-C", str(repo), "add", "agent.nix"], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "host"], check=True)
    writable = [b.container for b in binds if not b.read_only]
    script = (
        f"for d in {' '.join(writable)}; do echo x > $d/written-inside || exit 3; done;"
        " cd /state/repo && echo '# edited' >> agent.nix"
        " && git -c user.name=m -c user.email=m@h commit -qam inside"
        " && id -u && cat /proc/self/uid_map"
    )
    ro = read_only_paths("")
    root = prepare_root(container_root(settings, paths.name), binds, ro)
    argv = nspawn_argv("systemd-nspawn", settings, paths, [], ro, root=root, register=False)
    argv = [*argv[: argv.index("--")], "--", "/bin/sh", "-c", script]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    inside_uid, uid_map = done.stdout.split("\n")[:2]
    assert inside_uid == "0"
    assert int(uid_map.split()[1]) != 0
    for bind in binds:
        if not bind.read_only:
            written = Path(bind.host) / "written-inside"
            assert written.read_text() == "x\n"
            assert written.stat().st_uid == 0
    log = subprocess.run(
        ["git", "-C", str(repo), "log", "--format=%s"], capture_output=True, text=True, check=True
    )
    assert log.stdout.split() == ["inside", "host"]
    assert (repo / "agent.nix").stat().st_uid == 0
    status = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True
    )
    assert status.returncode == 0, status.stderr
    assert status.stdout == ""

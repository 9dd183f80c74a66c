"""The state dir's filesystem fills up, then space returns (SPEC §5, §13): real daemon.

The state dir is a small tmpfs mounted under the test's own tmp_path (unique per xdist
worker, always unmounted). While it is full, sends are refused with an error that says the
disk is full and that nothing was saved, reads still work, the process and its connections
stay up; once space returns, sends succeed again without a restart, and every send that
was acknowledged before, during or after the episode survives a kill -9.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hivetest import Client, DaemonProcess
from rel_support import fill, query, tmpfs

NO_HARNESS = {"HYPERHIVE_HARNESS": "false"}
BIG = "x" * 200_000


@pytest.fixture
def small_disk_daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    with tmpfs(tmp_path / "state", "8m"):
        proc = DaemonProcess(tmp_path, **NO_HARNESS)
        proc.start()
        try:
            yield proc
        finally:
            proc.stop()


async def test_full_state_disk_refuses_sends_clearly_and_recovers(
    small_disk_daemon: DaemonProcess,
) -> None:
    daemon = small_disk_daemon
    for name in ("ana", "ben"):
        assert daemon.cli("spawn", name).returncode == 0
    ana = await Client.open(daemon.socket_of("ana"))
    acknowledged: dict[int, str] = {}
    try:
        before = await ana.call("send", to="ben", body="before the disk filled")
        assert before["kind"] == "ok", before
        acknowledged[before["ids"][0]] = "before the disk filled"

        filler = fill(daemon.root / "state")
        refused = None
        for attempt in range(40):  # the WAL may have room for a few frames left
            reply = await ana.call("send", to="ben", body=f"{attempt}{BIG}")
            if reply["kind"] == "err":
                refused = reply["message"]
                break
            acknowledged[reply["ids"][0]] = f"{attempt}{BIG}"
        assert refused is not None, "40 sends of 200 kB into a full 8 MB disk all succeeded"
        assert "disk is full" in refused, refused
        assert "nothing was saved" in refused, refused

        # the process, this connection and reads are fine while the disk is full
        assert (await ana.call("whoami"))["kind"] == "whoami"
        assert (await ana.call("status"))["kind"] == "status"
        assert daemon.proc is not None
        assert daemon.proc.poll() is None

        filler.unlink()
        after = await ana.call("send", to="ben", body="after space returned")
        assert after["kind"] == "ok", f"no recovery once space returned: {after}"
        acknowledged[after["ids"][0]] = "after space returned"
    finally:
        await ana.close()

    daemon.kill9()
    daemon.start()
    db = daemon.root / "state" / "broker.sqlite"
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    stored = dict(query(db, "SELECT id, body FROM messages WHERE sender = 'ana'"))
    assert stored == acknowledged, "the stored sends differ from the acknowledged ones"

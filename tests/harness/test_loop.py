"""The turn loop with the real claude CLI against the API stand-in and a real daemon."""

from __future__ import annotations

from pathlib import Path

from harness.support import running_harness, spawn_quiet
from hivetest import call, running_hive
from standin.api import StandIn, Text, ToolCall


async def test_message_runs_a_turn_and_is_acked(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    async with running_hive(tmp_path / "hive") as hive:
        host = hive.settings.host_socket
        sock = hive.settings.run_dir / "agents" / "alice" / "mcp.sock"
        await spawn_quiet(host, sock, "alice")
        async with running_harness(tmp_path / "alice", "alice", sock, claude_bin, standin) as h:
            standin.script(
                h.key,
                ToolCall("mcp__hyperhive__send", {"to": "operator", "body": "hi op"}),
                Text("done"),
            )
            sent = await call(host, "send", to="alice", body="say hi to the operator")
            assert sent["kind"] == "ok"
            end = await h.wait_event("turn_end")
            assert end.payload["ok"] is True, end.payload
            recent = await call(host, "recent", limit=10)
            print(recent)
            for e in h.harness.store.list_events():
                print(e.kind, str(e.payload)[:400])

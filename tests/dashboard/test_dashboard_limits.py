"""The dashboard stays small and usable when an agent floods it (issue 13): sections are
bounded and paged with counts, approvals are never buried by questions."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
from dashsupport import running_dashboard
from hivetest import Client

QUESTIONS = 2000
STATE_BOUND = 256 * 1024
"""Bytes /api/state (with and without its html) may take, whatever the hive holds."""


async def test_2000_questions_keep_api_state_small_and_the_approval_visible(
    tmp_path: Path,
) -> None:
    async with running_dashboard(tmp_path, max_open_questions_per_agent=QUESTIONS + 10) as dash:
        await dash.hive.lifecycle.spawn("alice")
        approval_id = await dash.hive.approvals.request_spawn("dave", "a helper")
        alice = await Client.open(dash.socket("alice"))
        text = "please decide " + "y" * 4000
        for i in range(QUESTIONS):
            reply = await alice.call("ask_operator", question=f"{i} {text}", options=["a", "b"])
            assert reply["kind"] == "question_queued", reply
        await alice.close()
        async with aiohttp.ClientSession() as s:
            for path in ("/api/state", "/api/state?html=1", "/"):
                async with s.get(dash.url + path) as r:
                    assert r.status == 200
                    raw = await r.read()
                assert len(raw) < STATE_BOUND, f"{path} is {len(raw)} bytes"
                assert f"a-{approval_id}".encode() in raw or path == "/api/state"
            async with s.get(dash.url + "/api/state?html=1") as r:
                snap = json.loads(await r.read())
        assert [a["id"] for a in snap["approvals"]] == [approval_id]
        assert snap["totals"]["questions"] == QUESTIONS
        assert snap["totals"]["approvals"] == 1
        shown = snap["questions"]
        assert 0 < len(shown) <= 100
        assert [q["id"] for q in shown] == sorted(q["id"] for q in shown)  # oldest first
        assert f"showing {len(shown)} of {QUESTIONS:,}" in snap["html"]["questions"]


async def test_huge_message_bodies_do_not_bloat_api_state(tmp_path: Path) -> None:
    async with running_dashboard(tmp_path) as dash:
        await dash.hive.lifecycle.spawn("alice")
        alice = await Client.open(dash.socket("alice"))
        for _ in range(30):
            reply = await alice.call("send", to="operator", body="z" * (256 * 1024))
            assert reply["kind"] == "ok", reply
        await alice.close()
        async with aiohttp.ClientSession() as s, s.get(dash.url + "/api/state") as r:
            raw = await r.read()
        assert len(raw) < STATE_BOUND, f"/api/state is {len(raw)} bytes"

"""The dashboard stays small and usable when an agent floods it (issue 13): sections are
bounded and paged with counts, approvals are never buried by questions."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
from dashsupport import running_dashboard
from hivetest import Client
from hyperhive.dashboard.views import Renderer
from hyperhive.hub import Change

QUESTIONS = 2000
STATE_BOUND = 1024 * 1024
"""Bytes /api/state (with and without its html) may take, whatever the hive holds: its
worst case is one page of the largest questions (50 x 8 KiB, as JSON and as HTML); before
the bound, 2,000 questions made it 110 MB."""


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
        async with aiohttp.ClientSession(headers=dash.auth) as s:
            for path in ("/api/state", "/api/state?html=1"):
                async with s.get(dash.url + path) as r:
                    assert r.status == 200
                    raw = await r.read()
                assert len(raw) < STATE_BOUND, f"{path} is {len(raw)} bytes"
                assert f"a-{approval_id}".encode() in raw or path == "/api/state"
            async with s.get(dash.url + "/") as r:
                page = await r.text()
            # approvals come first: a flood of questions cannot push them out of sight
            assert page.index('data-list="approvals"') < page.index('data-list="questions"')
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
        async with aiohttp.ClientSession(headers=dash.auth) as s:
            for path in ("/api/state", "/dashboard/history?limit=1000"):
                async with s.get(dash.url + path) as r:
                    raw = await r.read()
                assert len(raw) < STATE_BOUND, f"{path} is {len(raw)} bytes"


async def test_live_updates_keep_the_questions_section_to_one_page(tmp_path: Path) -> None:
    """A question beyond the first page only moves the count line; resolving one inside
    it lets the next one in."""
    async with running_dashboard(tmp_path, dashboard_page_size=3) as dash:
        hive = dash.hive
        await hive.lifecycle.spawn("alice")
        alice = await Client.open(dash.socket("alice"))
        ids = [(await alice.call("ask_operator", question=f"q{i}?"))["id"] for i in range(5)]
        await alice.close()
        renderer = Renderer()
        fifth = hive.questions.list_open()[-1].model_dump()
        ops = renderer.ops(Change(1, "question", fifth), hive)
        assert [(op.list, op.key) for op in ops] == [("questions", "more-questions")]
        assert ops[0].html is not None
        assert "showing 3 of 5" in ops[0].html
        await hive.questions.answer(ids[0], "done")
        answered = {**hive.questions.list_open()[0].model_dump(), "id": ids[0], "answer": "x"}
        answered["answered_at"] = 1
        ops = renderer.ops(Change(2, "question", answered), hive)
        assert [(op.list, op.key) for op in ops] == [("questions", None)]
        html = ops[0].html or ""
        assert [f'data-key="q-{i}"' in html for i in ids] == [False, True, True, True, False]
        assert "showing 3 of 4" in html

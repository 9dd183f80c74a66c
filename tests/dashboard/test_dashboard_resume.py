"""The dashboard's change stream across a daemon restart: positions stay unique, and a
client that names a position it cannot be sure of is told to resync.

`seq` starts again at 1 with every daemon start; before the epoch, an EventSource that
reconnected after a restart with `Last-Event-ID: 40` had no way to know that the `id: 3`
it now got was a different change than the `3` it had seen.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from dashsupport import Dash, running_dashboard, until
from hivetest import running_hive
from hyperhive.dashboard import start_dashboard
from hyperhive.dashboard.app import FANOUT
from playwright.async_api import Browser, expect


async def next_frames(
    resp: aiohttp.ClientResponse, count: int, within: float = 10
) -> list[tuple[str, str | None, Any]]:
    """The next `count` SSE frames as (event, id, data); comments skipped."""
    got: list[tuple[str, str | None, Any]] = []
    fields: dict[str, str] = {}
    async with asyncio.timeout(within):
        while len(got) < count:
            text = (await resp.content.readline()).decode().rstrip("\n")
            if text and not text.startswith(":"):
                name, _, value = text.partition(": ")
                fields[name] = value
            elif not text and "data" in fields:
                data = json.loads(fields["data"])
                got.append((fields.get("event", "message"), fields.get("id"), data))
                fields = {}
            elif not text:
                fields = {}
    return got


async def change_ids(dash: Dash, name: str) -> list[str]:
    """The SSE ids of the changes a spawn of `name` makes, read from a fresh stream."""
    async with (
        aiohttp.ClientSession(headers=dash.auth) as s,
        s.get(dash.url + "/dashboard/stream") as stream,
    ):
        await stream.content.readline()  # "retry:": subscribed from here on
        await dash.hive.lifecycle.spawn(name)
        frames = await next_frames(stream, 3)
    assert all(event == "change" for event, _, _ in frames)
    ids = [frame_id for _, frame_id, _ in frames]
    assert all(ids)
    return [i for i in ids if i]


async def first_frame_after(dash: Dash, position: str, then: str) -> str:
    """Reconnect with `position` as Last-Event-ID, spawn `then`; the first frame's event."""
    async with (
        aiohttp.ClientSession(headers=dash.auth) as s,
        s.get(dash.url + "/dashboard/stream", headers={"Last-Event-ID": position}) as stream,
    ):
        await stream.content.readline()  # "retry:"
        spawning = asyncio.create_task(dash.hive.lifecycle.spawn(then))
        try:
            [(event, _, _)] = await next_frames(stream, 1)
        finally:
            await spawning
    return event


async def test_positions_stay_unique_across_a_restart_and_an_old_one_resyncs(
    tmp_path: Path,
) -> None:
    async with running_dashboard(tmp_path) as dash:
        before = await change_ids(dash, "alice")
    async with running_dashboard(tmp_path) as dash:  # the same state: a restarted daemon
        after = await change_ids(dash, "bob")
        assert not set(before) & set(after), (before, after)
        # An EventSource from before the restart reconnects with its last id.
        assert await first_frame_after(dash, before[-1], "carol") == "resync"


async def test_snapshot_and_frames_name_the_same_epoch(tmp_path: Path) -> None:
    async with running_dashboard(tmp_path) as dash:
        async with (
            aiohttp.ClientSession(headers=dash.auth) as s,
            s.get(dash.url + "/dashboard/stream") as stream,
        ):
            await stream.content.readline()
            async with s.get(dash.url + "/api/state") as resp:
                snap = await resp.json()
            await dash.hive.lifecycle.spawn("alice")
            [(_, frame_id, data)] = await next_frames(stream, 1)
        assert snap["epoch"] == data["epoch"] == dash.hive.hub.epoch
        assert frame_id == f"{snap['epoch']}-{data['seq']}"


async def test_an_old_or_unreached_position_of_this_life_resyncs(tmp_path: Path) -> None:
    async with running_dashboard(tmp_path) as dash:
        ids = await change_ids(dash, "alice")
        epoch = dash.hive.hub.epoch
        # changes were missed since this position: nothing is replayed, so resync
        assert await first_frame_after(dash, ids[0], "bob") == "resync"
        assert await first_frame_after(dash, f"{epoch}-99999", "carol") == "resync"
        assert await first_frame_after(dash, "7", "dave") == "resync"  # no epoch at all


async def test_the_newest_position_resumes_without_a_resync(tmp_path: Path) -> None:
    async with running_dashboard(tmp_path) as dash:
        await change_ids(dash, "alice")
        fanout = dash.bound.runner.app[FANOUT]

        async def caught_up() -> bool:
            return fanout.recent.seq == dash.hive.hub.seq

        await until(caught_up)  # the stream's newest change is the hub's newest
        newest = f"{dash.hive.hub.epoch}-{dash.hive.hub.seq}"
        assert await first_frame_after(dash, newest, "bob") == "change"


CONTAINERS = '[data-list="containers"]'


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.usefixtures("on_the_session_loop")
async def test_an_open_dashboard_goes_on_live_after_a_daemon_restart(
    tmp_path: Path, browser: Browser
) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    context.on("weberror", lambda e: errors.append(str(e.error)))
    try:
        async with running_dashboard(tmp_path) as dash:
            port = dash.bound.port
            page = await context.new_page()
            await page.goto(dash.login_url)
            await expect(page.locator("#conn")).to_have_text("● live")
            await dash.hive.lifecycle.spawn("alice")
            await expect(page.locator(f"{CONTAINERS} [data-key=agent-alice]")).to_be_visible()
            first_epoch = dash.hive.hub.epoch
        async with running_hive(tmp_path) as hive:  # the same state, a new daemon
            bound = await start_dashboard(hive, port=port)
            try:
                assert hive.hub.epoch != first_epoch
                await expect(page.locator("#conn")).to_have_text("● live", timeout=20_000)
                await hive.lifecycle.spawn("bob")
                await expect(page.locator(f"{CONTAINERS} [data-key=agent-bob]")).to_be_visible()
                # The page follows the new life's numbering, not the old one's.
                await until(lambda: _seq_reached(page, hive.hub.seq))
            finally:
                await bound.stop()
    finally:
        await context.close()
    assert errors == []


async def _seq_reached(page: Any, seq: int) -> bool:
    return int(await page.evaluate("Number(document.body.dataset.seq)")) >= seq

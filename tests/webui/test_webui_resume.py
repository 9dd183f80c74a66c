"""An open agent page resumes across a harness restart, or is told to start again.

The field report: after a restart whose event store was emptied (the weekly
events_vacuum) or in no-store mode, event numbers started again at 1; an open page
reconnected with its old `Last-Event-ID`, showed "● live" and received nothing, ever.
Positions now carry an epoch (`<epoch>-<n>`); one from another life, one the harness has
not reached, or one whose events are gone gets `event: resync`.

These harnesses run no turn loop (no claude): only the bus, the store and the web UI.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from harness.support import MCP_COMMAND, harness_settings
from hyperhive.harness.assembly import Harness
from hyperhive.http import serve_app
from hyperhive.retention import vacuum_agent
from hyperhive.settings import Settings
from hyperhive.webui.app import create_app
from hyperhive.wire.roles import Role
from playwright.async_api import Browser, expect

pytestmark = pytest.mark.asyncio(loop_scope="session")

KEY = "k" * 43
AUTH = {"Authorization": f"Bearer {KEY}"}


@dataclass
class Frame:
    event: str
    id: str | None
    data: Any


@asynccontextmanager
async def life(
    root: Path, *, store: bool = True, port: int = 0, seen: list[tuple[str, int]] | None = None
) -> AsyncIterator[tuple[Harness, str]]:
    """One start of a harness (same directories every time) with its web UI served."""
    settings = harness_settings(root, "alice", root / "nobody-listens.sock", Path("/bin/false"))
    (root / "web-key").write_text(KEY)
    update: dict[str, Any] = {"web_key_file": root / "web-key"}
    if not store:  # a path that cannot be a database: no-store mode
        (root / "not-a-dir").write_text("x")
        update["events_db"] = root / "not-a-dir" / "events.sqlite"
    harness = Harness.open(settings.model_copy(update=update), Role.AGENT, MCP_COMMAND)
    assert (harness.store is not None) == store
    app = create_app(harness, inbox_interval=0.5)
    if seen is not None:  # every answer, as the server sent it (the browser hides some)

        async def record(request: web.Request, response: web.StreamResponse) -> None:
            seen.append((request.path, response.status))

        app.on_response_prepare.append(record)
    bound = await serve_app(app, "127.0.0.1", port, delays=[0.1] * 50)
    try:
        yield harness, bound.url
    finally:
        await bound.stop()
        await harness.close()


async def get_json(url: str, path: str) -> Any:
    async with aiohttp.ClientSession(headers=AUTH) as session, session.get(url + path) as resp:
        assert resp.status == 200
        return await resp.json()


async def frames(resp: aiohttp.ClientResponse) -> AsyncIterator[Frame]:
    """The SSE frames of `resp` (comments skipped)."""
    fields: dict[str, str] = {}
    while True:
        raw = await resp.content.readline()
        if not raw:
            return
        text = raw.decode().rstrip("\n")
        if text:
            if not text.startswith(":"):
                name, _, value = text.partition(": ")
                fields[name] = value
            continue
        if "data" in fields:
            data = json.loads(fields["data"])
            yield Frame(fields.get("event", "message"), fields.get("id"), data)
        fields = {}


async def first_frame(url: str, want: set[str], headers: dict[str, str], within: float) -> Frame:
    """The first frame of a kind in `want` on a fresh stream, within `within` seconds."""
    async with (
        aiohttp.ClientSession(headers=AUTH) as session,
        session.get(f"{url}/events/stream", headers=headers) as resp,
    ):
        assert resp.status == 200, await resp.text()
        async with asyncio.timeout(within):
            async for frame in frames(resp):
                if frame.event in want:
                    return frame
    raise AssertionError(f"the stream ended without a frame of {want}")


async def last_position(harness: Harness, url: str) -> str:
    """The SSE id of the newest event, as a browser's EventSource would hold it."""
    harness.bus.publish("note", {"source": "test", "text": "the page saw this one"})
    # "0": the stream from now on; then one more event, to read its id.
    async with (
        aiohttp.ClientSession(headers=AUTH) as session,
        session.get(f"{url}/events/stream?after=0") as resp,
        asyncio.timeout(20),
    ):
        async for frame in frames(resp):
            if frame.event == "inbox":
                harness.bus.publish("note", {"source": "test", "text": "and this"})
            elif frame.event == "ev":
                assert frame.id is not None
                return frame.id
    raise AssertionError("no event frame")


async def resumes_or_resyncs(url: str, harness: Harness, position: str) -> Frame:
    """Reconnect with `position` as Last-Event-ID while the harness keeps publishing."""

    async def publish() -> None:
        while True:
            harness.bus.publish("note", {"source": "test", "text": "after the restart"})
            await asyncio.sleep(0.2)

    publisher = asyncio.create_task(publish())
    try:
        return await first_frame(url, {"ev", "resync"}, {"Last-Event-ID": position}, 10)
    except TimeoutError:
        raise AssertionError(
            f"reconnected with {position!r}: neither events nor a resync within 10 s"
        ) from None
    finally:
        publisher.cancel()


async def empty_the_store(root: Path) -> None:
    """What the weekly events_vacuum does to an agent idle for longer than keep_days."""
    settings = Settings(events_keep_days=7, events_keep_rows=2000)
    fd = os.open(root / "state", os.O_RDONLY | os.O_DIRECTORY)
    try:
        result = await vacuum_agent(settings, fd, time.time() + 8 * 86400)
    finally:
        os.close(fd)
    assert "skipped" not in result, result


@pytest.mark.parametrize("store", [True, False], ids=["store-emptied", "no-store"])
async def test_a_page_from_before_a_restart_is_told_to_resync(tmp_path: Path, store: bool) -> None:
    async with life(tmp_path, store=store) as (harness, url):
        for n in range(100):  # a life long enough that the next one stays below it
            harness.bus.publish("note", {"source": "test", "text": f"old {n}"})
        old = await last_position(harness, url)
    if store:
        await empty_the_store(tmp_path)
    async with life(tmp_path, store=store) as (harness, url):
        got = await resumes_or_resyncs(url, harness, old)
        assert got.event == "resync", got
        # Numbers start again, but no position of this life equals one of the last.
        assert got.data["epoch"] == harness.bus.epoch
        old_epoch, old_last = old.rsplit("-", 1)
        old_ids = {f"{old_epoch}-{n}" for n in range(1, int(old_last) + 1)}
        new_ids = {harness.bus.position(n) for n in range(1, harness.bus.last_id + 1)}
        assert harness.bus.last_id < 10  # the numbers really did start again
        assert not new_ids & old_ids
        # The page reloads the history and resumes from the position it names.
        hist = await get_json(url, "/events/history")
        assert hist["epoch"] == harness.bus.epoch
        position = f"{hist['epoch']}-{hist['last_id']}"
        got = await resumes_or_resyncs(url, harness, position)
        assert got.event == "ev"
        assert got.id is not None
        epoch, n = got.id.rsplit("-", 1)
        assert epoch == harness.bus.epoch
        if store:  # the very next event; without a store, what was published before is gone
            assert int(n) == hist["last_id"] + 1
        else:
            assert int(n) > hist["last_id"]


async def test_a_restart_that_kept_the_store_resyncs_and_numbers_continue(tmp_path: Path) -> None:
    async with life(tmp_path) as (harness, url):
        old = await last_position(harness, url)
        first_life_last = harness.bus.last_id
    async with life(tmp_path) as (harness, url):
        assert harness.bus.last_id == first_life_last  # the store kept the count
        got = await resumes_or_resyncs(url, harness, old)
        assert got.event == "resync"
        hist = await get_json(url, "/events/history")
        texts = [e["payload"].get("text") for e in hist["events"]]
        assert "the page saw this one" in texts  # the history spans both lives


async def test_a_position_ahead_of_the_harness_is_told_to_resync(tmp_path: Path) -> None:
    async with life(tmp_path) as (harness, url):
        ahead = harness.bus.position(harness.bus.last_id + 500)
        got = await resumes_or_resyncs(url, harness, ahead)
        assert got.event == "resync"


async def test_a_position_whose_events_were_vacuumed_is_told_to_resync(tmp_path: Path) -> None:
    async with life(tmp_path) as (harness, url):
        old = await last_position(harness, url)
        for n in range(20):
            harness.bus.publish("note", {"source": "test", "text": f"missed {n}"})
        assert harness.store is not None
        await harness.store.flush()
        await empty_the_store(tmp_path)  # while the page was away: its next events are gone
        got = await resumes_or_resyncs(url, harness, old)
        assert got.event == "resync"


async def test_a_position_of_this_life_resumes_with_the_next_event(tmp_path: Path) -> None:
    async with life(tmp_path) as (harness, url):
        old = await last_position(harness, url)
        n = int(old.rsplit("-", 1)[1])
        got = await resumes_or_resyncs(url, harness, old)
        assert got.event == "ev"
        assert got.id == harness.bus.position(n + 1)
        assert got.id is not None
        assert got.id.startswith(f"{harness.bus.epoch}-")


async def test_a_malformed_position_is_a_clear_400(tmp_path: Path) -> None:
    async with (
        life(tmp_path) as (_, url),
        aiohttp.ClientSession(headers=AUTH) as session,
        session.get(f"{url}/events/stream?after=../x") as resp,
    ):
        assert resp.status == 400
        assert "<epoch>-<id>" in (await resp.json())["error"]


@pytest.mark.parametrize("store", [True, False], ids=["store-emptied", "no-store"])
async def test_an_open_page_redraws_and_goes_on_after_a_restart(
    tmp_path: Path, browser: Browser, store: bool
) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        async with life(tmp_path, store=store) as (harness, url):
            port = int(url.rsplit(":", 1)[1])
            page = await context.new_page()
            await page.goto(f"{url}/#key={KEY}")
            await expect(page.locator("#conn")).to_have_text("● live")
            for n in range(100):
                harness.bus.publish("note", {"source": "test", "text": f"first life {n}"})
            await expect(page.locator("#term .k-note .x").last).to_have_text("test: first life 99")
        if store:
            await empty_the_store(tmp_path)
        async with life(tmp_path, store=store, port=port) as (harness, url):
            note = page.locator("#term .k-note .x", has_text="second life")

            async def publish() -> None:
                while True:
                    harness.bus.publish("note", {"source": "test", "text": "second life"})
                    await asyncio.sleep(0.3)

            publisher = asyncio.create_task(publish())
            try:
                # Before the epoch: "● live" again, and nothing ever drawn.
                await expect(note.first).to_be_visible(timeout=20_000)
            finally:
                publisher.cancel()
            await expect(page.locator("#conn")).to_have_text("● live")
            await expect(page.locator("#term", has_text="history reloaded")).to_be_visible()
            # The first life's lines are gone with its store (or were never stored).
            await expect(page.locator("#term .k-note", has_text="first life")).to_have_count(0)
    finally:
        await context.close()


async def test_a_page_load_asks_for_nothing_that_fails(tmp_path: Path, browser: Browser) -> None:
    # Chromium asks for /favicon.ico on every load (Playwright does not report that
    # request, so the server's side is watched): it was refused on every load.
    seen: list[tuple[str, int]] = []
    context = await browser.new_context()
    try:
        async with life(tmp_path, seen=seen) as (_, url):
            page = await context.new_page()
            await page.goto(f"{url}/#key={KEY}")
            await expect(page.locator("#conn")).to_have_text("● live")
            deadline = time.monotonic() + 10
            while "/favicon.ico" not in dict(seen):
                assert time.monotonic() < deadline, f"no request for the icon: {seen}"
                await asyncio.sleep(0.05)
    finally:
        await context.close()
    assert dict(seen)["/favicon.ico"] == 200
    assert [(path, status) for path, status in seen if status >= 400] == []

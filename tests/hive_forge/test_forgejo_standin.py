"""The Forgejo stand-in itself behaves like Forgejo where hive-forge depends on it."""

from __future__ import annotations

import aiohttp
from forge_fixtures import REPO, TOKEN, Seeded

AUTH = {"Authorization": f"token {TOKEN}"}


async def test_lists_page_with_link_and_total_count_headers(forge: Seeded) -> None:
    forge.repo.branches = [(f"b{n:03d}", "f" * 40) for n in range(75)]
    url = f"{forge.server.url}/api/v1/repos/{REPO}/branches"
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.get(url) as first:
            first_items = await first.json()
            first_link = first.headers["Link"]
            total = first.headers["X-Total-Count"]
        async with session.get(url, params={"page": "2", "limit": "500"}) as last:
            last_items = await last.json()
            last_link = last.headers["Link"]

    assert total == "75"
    assert len(first_items) == 30  # Forgejo's default page size
    root = f"{forge.server.url}/api/v1/repos/{REPO}/branches"
    assert first_link == f'<{root}?page=2>; rel="next",<{root}?page=3>; rel="last"'
    assert len(last_items) == 25  # limit capped at 50
    assert last_link == (
        f'<{root}?page=1&limit=500>; rel="first",<{root}?page=1&limit=500>; rel="prev"'
    )


async def test_issue_comments_are_not_paged(forge: Seeded) -> None:
    for n in range(60):
        forge.standin.add_comment(forge.issue, "alice", f"c{n}")
    url = f"{forge.server.url}/api/v1/repos/{REPO}/issues/42/comments"
    async with (
        aiohttp.ClientSession(headers=AUTH) as session,
        session.get(url, params={"page": "1", "limit": "10"}) as response,
    ):
        items = await response.json()
        headers = response.headers

    assert len(items) == 63
    assert headers["X-Total-Count"] == "63"
    assert "Link" not in headers


async def test_auth_is_enforced(forge: Seeded) -> None:
    url = f"{forge.server.url}/api/v1/repos/{REPO}/issues/42"
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as anonymous:
            anonymous_body = await anonymous.json()
        async with session.get(url, headers={"Authorization": "token nope"}) as wrong:
            wrong_body = await wrong.json()
        async with session.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as bearer:
            bearer_status = bearer.status

    assert (anonymous.status, anonymous_body["message"]) == (401, "token is required")
    assert (wrong.status, wrong_body["message"]) == (401, "user does not exist [uid: 0, name: ]")
    assert bearer_status == 200


async def test_rejects_what_forgejo_rejects(forge: Seeded) -> None:
    base = f"{forge.server.url}/api/v1/repos/{REPO}/issues/42"
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.post(f"{base}/comments", json={}) as no_body:
            no_body_json = await no_body.json()
        async with session.post(f"{base}/labels", json={"labels": [1, "bug"]}) as mixed:
            mixed_json = await mixed.json()
        async with session.post(f"{base}/comments", data=b"{not json") as garbage:
            garbage_status = garbage.status
        async with session.get(f"{base}9") as missing:
            missing_json = await missing.json()
        async with session.delete(f"{base}/labels/no-such-label") as bad_label:
            bad_label_status = bad_label.status

    assert (no_body.status, no_body_json["message"]) == (422, "[Body]: Required")
    assert (mixed.status, mixed_json["message"]) == (
        400,
        "labels should be an array of strings or integers",
    )
    assert garbage_status == 422
    assert missing.status == 404
    assert missing_json["message"] == "The target couldn't be found."
    assert missing_json["errors"] == []
    assert bad_label_status == 422
    assert forge.issue.comments[-1].body == "Thanks ✓"


async def test_edit_issue_answers_201_and_null_assignees(forge: Seeded) -> None:
    url = f"{forge.server.url}/api/v1/repos/{REPO}/issues/42"
    async with (
        aiohttp.ClientSession(headers=AUTH) as session,
        session.patch(url, json={"state": "closed"}) as response,
    ):
        issue = await response.json()

    assert response.status == 201
    assert issue["state"] == "closed"
    assert issue["assignees"] is None
    assert issue["pull_request"] is None

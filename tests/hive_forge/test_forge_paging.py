"""Every list hive-forge reads is complete whatever paging headers the server sends.

Forgejo sends `Link` and `X-Total-Count`; Gitea and older Forgejo send only
`X-Total-Count` on label lists; a proxy may strip both. The field report: with no `Link`,
hive-forge stopped after the first page and called the 55th label unknown ("50 in all").
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from forge_fixtures import REPO, TOKEN, Run, Seeded
from forgejo_standin import PAGING_MODES
from hive_forge.client import ForgeClient, Repo

CLI = Callable[..., Run]

# (items, the server's page cap): several full pages and a short one; exactly one full
# page (the next page is empty); a server that caps pages below what hive-forge asks for.
SHAPES = [(121, 50), (50, 50), (121, 20)]


def _seed(forge: Seeded, endpoint: str, count: int) -> tuple[str, list[object]]:
    """Fill `endpoint`'s list to `count` items; return its path and the expected keys."""
    standin = forge.standin
    if endpoint == "repo labels":
        for n in range(count - len(forge.repo.label_ids)):
            standin.add_label(forge.repo, f"area/{n:03d}")
        return f"/repos/{REPO}/labels", [standin.labels[i].name for i in forge.repo.label_ids]
    if endpoint == "org labels":
        for n in range(count):
            standin.add_label(None, f"org/{n:03d}", org="hive")
        return "/orgs/hive/labels", [f"org/{n:03d}" for n in range(count)]
    if endpoint == "branches":
        forge.repo.branches = [(f"b/{n:03d}", f"{n:040x}") for n in range(count)]
        return f"/repos/{REPO}/branches", [name for name, _ in forge.repo.branches]
    assert endpoint == "comments"
    for n in range(count - len(forge.issue.comments)):
        standin.add_comment(forge.issue, "alice", f"comment {n}")
    return f"/repos/{REPO}/issues/42/comments", [c.body for c in forge.issue.comments]


def _lister(client: ForgeClient, endpoint: str) -> Callable[[], Awaitable[list[object]]]:
    async def run() -> list[object]:
        if endpoint == "repo labels":
            return [label["name"] for label in await client.list_repo_labels()]
        if endpoint == "org labels":
            return [label["name"] for label in await client.list_org_labels()]
        if endpoint == "branches":
            return [branch["name"] for branch in await client.list_branches()]
        return [comment["body"] for comment in await client.list_comments(42)]

    return run


@pytest.mark.parametrize("mode", PAGING_MODES)
@pytest.mark.parametrize("endpoint", ["repo labels", "org labels", "branches", "comments"])
@pytest.mark.parametrize(("count", "cap"), SHAPES)
async def test_every_paged_list_is_complete_in_every_paging_mode(
    forge: Seeded, mode: str, endpoint: str, count: int, cap: int
) -> None:
    forge.standin.paging = mode
    forge.standin.max_page_size = cap
    path, expected = _seed(forge, endpoint, count)
    assert len(expected) == count

    async with ForgeClient(forge.server.url, TOKEN, Repo("hive", "core")) as client:
        got = await _lister(client, endpoint)()

    assert got == expected  # every item, once, in the server's order
    requests = forge.standin.requests_to("GET", path)
    pages = 1 if endpoint == "comments" else math.ceil(count / cap)
    # At most one request past the last page (the empty or repeated page that says "end").
    assert pages <= len(requests) <= pages + 1, [r.query for r in requests]


@pytest.mark.parametrize("mode", PAGING_MODES)
def test_the_55th_label_is_found_without_a_link_header(
    forge: Seeded, agent_env: Path, cli: CLI, mode: str
) -> None:
    # The report, as the operator saw it: Gitea sends X-Total-Count but no Link.
    forge.standin.paging = mode
    for n in range(55 - len(forge.repo.label_ids)):
        forge.standin.add_label(forge.repo, f"area/{n:02d}")

    result = cli("labels", "42", "add", "area/50")

    assert result.code == 0, result.err
    assert result.out == "#42 labels: bug, area/50\n"


async def test_a_server_that_ignores_page_does_not_repeat_items(forge: Seeded) -> None:
    # With neither header, a list that does not page (Forgejo's issue comments) answers
    # every page with the same items; hive-forge must stop, not loop to its page limit.
    forge.standin.paging = "none"
    _, expected = _seed(forge, "comments", 60)

    async with ForgeClient(forge.server.url, TOKEN, Repo("hive", "core")) as client:
        got = [c["body"] for c in await client.list_comments(42)]

    assert got == expected
    assert len(forge.standin.requests_to("GET", "/issues/42/comments")) == 2

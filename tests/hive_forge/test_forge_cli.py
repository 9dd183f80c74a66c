"""Each hive-forge verb against the Forgejo stand-in: the exact requests and the output."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from forge_fixtures import REPO, TOKEN, Run, Seeded, seed
from forgejo_standin import ForgejoStandin, StandinServer
from hive_forge.client import PAGE_LIMIT

CLI = Callable[..., Run]
ISSUE_PATH = f"/api/v1/repos/{REPO}/issues/42"


def test_view_prints_title_state_labels_body_and_every_comment(
    forge: Seeded, agent_env: Path, cli: CLI
) -> None:
    result = cli("view", "42")

    assert result.code == 0, result.err
    assert result.err == ""
    lines = result.out.splitlines()
    assert lines[0] == "#42 [open] Harness drops the last line"
    assert lines[1] == "issue by hm1nd at 2026-11-20T09:00:00Z"
    assert "labels: bug" in lines
    assert "assignees: nobody" in lines
    assert "Steps:\n1. run\n2. look" in result.out
    assert "--- comment 1/3 by alice at 2026-11-20T09:00:00Z ---\nConfirmed on main." in result.out
    assert "Looking — **bold** claim:\n\n```\ncode\n```" in result.out
    assert result.out.endswith("--- comment 3/3 by hm1nd at 2026-11-20T09:00:00Z ---\nThanks ✓\n")
    gets = [(r.method, r.path) for r in forge.standin.requests]
    assert gets == [("GET", ISSUE_PATH), ("GET", f"{ISSUE_PATH}/comments")]
    assert all(r.authorization == f"token {TOKEN}" for r in forge.standin.requests)


def test_view_gets_all_comments_of_a_long_thread(forge: Seeded, agent_env: Path, cli: CLI) -> None:
    for n in range(4, 131):
        forge.standin.add_comment(forge.issue, "alice", f"comment number {n}")

    result = cli("view", "42", "--json")

    assert result.code == 0, result.err
    shown = json.loads(result.out)
    bodies = [c["body"] for c in shown["comments"]]
    assert len(bodies) == 130
    assert bodies[-1] == "comment number 130"
    assert len(set(bodies)) == 130
    assert shown["issue"]["number"] == 42
    assert shown["issue"]["labels"][0]["name"] == "bug"
    # Forgejo does not page issue comments: one request, however long the thread.
    assert len(forge.standin.requests_to("GET", "/comments")) == 1


def test_view_marks_pull_requests(forge: Seeded, agent_env: Path, cli: CLI) -> None:
    result = cli("view", "#7")

    assert result.code == 0, result.err
    assert result.out.splitlines()[1].startswith("pull request by damocles")
    assert "(no comments)" in result.out


def test_comment_with_body_posts_it_and_prints_the_comment_url(
    forge: Seeded, agent_env: Path, cli: CLI
) -> None:
    result = cli("comment", "42", "--body", "On it.\nWill report back.")

    assert result.code == 0, result.err
    posts = forge.standin.requests_to("POST")
    assert [(r.path, r.body) for r in posts] == [
        (f"{ISSUE_PATH}/comments", {"body": "On it.\nWill report back."})
    ]
    new = forge.issue.comments[-1]
    assert (new.poster, new.body) == ("damocles", "On it.\nWill report back.")
    assert result.out == (
        f"commented on #42: {forge.server.url}/{REPO}/issues/42#issuecomment-{new.id}\n"
    )


def test_comment_with_body_file_sends_the_file_byte_for_byte(
    forge: Seeded, agent_env: Path, cli: CLI, tmp_path: Path
) -> None:
    text = "# Report\r\n\n  indented\ttab  \n\nünïcödé — done\n\n"
    body_file = tmp_path / "report.md"
    body_file.write_bytes(text.encode())

    result = cli("comment", "42", "--body-file", str(body_file), "--json")

    assert result.code == 0, result.err
    assert forge.issue.comments[-1].body == text
    assert json.loads(result.out)["body"] == text


@pytest.mark.parametrize("argv", [("--body", ""), ("--body", " \n\t")])
def test_comment_refuses_an_empty_body_without_calling_forgejo(
    forge: Seeded, agent_env: Path, cli: CLI, argv: tuple[str, str]
) -> None:
    result = cli("comment", "42", *argv)

    assert result.code == 2
    assert result.err == (
        "hive-forge: the comment is empty; pass text with --body or --body-file PATH|-\n"
    )
    assert forge.standin.requests == []


def test_comment_needs_body_or_body_file(forge: Seeded, agent_env: Path, cli: CLI) -> None:
    result = cli("comment", "42")

    assert result.code == 2
    assert "one of the arguments --body --body-file is required" in result.err
    assert forge.standin.requests == []


def test_assign_replaces_the_assignees(forge: Seeded, agent_env: Path, cli: CLI) -> None:
    forge.issue.assignees = ["alice"]

    result = cli("assign", "42", "damocles")

    assert result.code == 0, result.err
    patches = forge.standin.requests_to("PATCH")
    assert [(r.path, r.body) for r in patches] == [(ISSUE_PATH, {"assignees": ["damocles"]})]
    assert forge.issue.assignees == ["damocles"]
    assert result.out == "#42 assignees: damocles\n"


def test_assign_add_keeps_current_assignees(forge: Seeded, agent_env: Path, cli: CLI) -> None:
    forge.issue.assignees = ["alice"]

    result = cli("assign", "42", "damocles", "hm1nd", "--add", "--json")

    assert result.code == 0, result.err
    assert forge.standin.requests_to("PATCH")[0].body == {
        "assignees": ["alice", "damocles", "hm1nd"]
    }
    assert [u["login"] for u in json.loads(result.out)["assignees"]] == [
        "alice",
        "damocles",
        "hm1nd",
    ]


@pytest.mark.parametrize(
    ("verb", "before", "state"), [("close", "open", "closed"), ("reopen", "closed", "open")]
)
def test_close_and_reopen_patch_the_state(
    forge: Seeded, agent_env: Path, cli: CLI, verb: str, before: str, state: str
) -> None:
    forge.issue.state = before

    result = cli(verb, "42")

    assert result.code == 0, result.err
    assert [(r.path, r.body) for r in forge.standin.requests_to("PATCH")] == [
        (ISSUE_PATH, {"state": state})
    ]
    assert forge.issue.state == state
    assert result.out == f"#42 {state}\n"


def test_close_json_prints_the_issue(forge: Seeded, agent_env: Path, cli: CLI) -> None:
    result = cli("--json", "close", "42")

    assert result.code == 0, result.err
    issue = json.loads(result.out)
    assert (issue["number"], issue["state"]) == (42, "closed")
    assert issue["closed_at"] is not None


def test_closing_a_merged_pr_reports_forgejos_refusal(
    forge: Seeded, agent_env: Path, cli: CLI
) -> None:
    forge.pull.merged = True

    result = cli("close", "7")

    assert result.code == 1
    assert result.err == (
        f"hive-forge: Forgejo failed to close issue #7 in {REPO} (HTTP 412: cannot change state "
        "of this pull request, it was already merged)\n"
    )


def test_labels_add_resolves_names_to_ids_across_label_pages(
    forge: Seeded, agent_env: Path, cli: CLI
) -> None:
    for n in range(70):
        forge.standin.add_label(forge.repo, f"area/{n:02d}")

    result = cli("labels", "42", "add", "feature", "area/69")

    assert result.code == 0, result.err
    label_gets = forge.standin.requests_to("GET", f"/repos/{REPO}/labels")
    assert [r.query for r in label_gets] == [
        {"page": "1", "limit": str(PAGE_LIMIT)},
        {"page": "2", "limit": str(PAGE_LIMIT)},
    ]
    posts = forge.standin.requests_to("POST")
    assert [(r.path, r.body) for r in posts] == [
        (f"{ISSUE_PATH}/labels", {"labels": [forge.label_id("feature"), forge.label_id("area/69")]})
    ]
    assert result.out == "#42 labels: bug, feature, area/69\n"


def test_labels_match_names_case_insensitively_when_unambiguous(
    forge: Seeded, agent_env: Path, cli: CLI
) -> None:
    result = cli("labels", "42", "add", "docs")

    assert result.code == 0, result.err
    assert forge.standin.requests_to("POST")[0].body == {"labels": [forge.label_id("Docs")]}


def test_labels_remove_deletes_each_label_by_id(forge: Seeded, agent_env: Path, cli: CLI) -> None:
    forge.issue.label_ids.append(forge.label_id("feature"))

    result = cli("labels", "42", "remove", "bug")

    assert result.code == 0, result.err
    deletes = forge.standin.requests_to("DELETE")
    assert [r.path for r in deletes] == [f"{ISSUE_PATH}/labels/{forge.label_id('bug')}"]
    assert forge.issue.label_ids == [forge.label_id("feature")]
    assert result.out == "#42 labels: feature\n"


def test_labels_set_replaces_all_labels(forge: Seeded, agent_env: Path, cli: CLI) -> None:
    result = cli("labels", "42", "set", "needs-review", "feature", "--json")

    assert result.code == 0, result.err
    puts = forge.standin.requests_to("PUT")
    wanted = [forge.label_id("needs-review"), forge.label_id("feature")]
    assert [(r.path, r.body) for r in puts] == [(f"{ISSUE_PATH}/labels", {"labels": wanted})]
    assert [label["name"] for label in json.loads(result.out)] == ["needs-review", "feature"]


def test_labels_set_without_names_clears(forge: Seeded, agent_env: Path, cli: CLI) -> None:
    result = cli("labels", "42", "set")

    assert result.code == 0, result.err
    assert [r.path for r in forge.standin.requests_to("DELETE")] == [f"{ISSUE_PATH}/labels"]
    assert forge.issue.label_ids == []
    assert result.out == "#42 has no labels\n"


def test_labels_without_action_shows_them(forge: Seeded, agent_env: Path, cli: CLI) -> None:
    result = cli("labels", "42")

    assert result.code == 0, result.err
    assert result.out == "#42 labels: bug\n"
    assert [r.method for r in forge.standin.requests] == ["GET"]


def test_labels_fall_back_to_the_organizations_labels(
    forge: Seeded, agent_env: Path, cli: CLI
) -> None:
    org_label = forge.standin.add_label(None, "priority/high", org="hive")

    result = cli("labels", "42", "add", "priority/high")

    assert result.code == 0, result.err
    assert forge.standin.requests_to("GET", "/orgs/hive/labels")
    assert forge.standin.requests_to("POST")[0].body == {"labels": [org_label]}
    assert result.out == "#42 labels: bug, priority/high\n"


def test_pr_prints_forgejos_pull_request_json(forge: Seeded, agent_env: Path, cli: CLI) -> None:
    result = cli("pr", "7")

    assert result.code == 0, result.err
    pull = json.loads(result.out)
    assert pull == json.loads(json.dumps(forge.standin.pull_json(forge.repo, forge.pull)))
    assert (pull["number"], pull["head"]["ref"], pull["base"]["ref"]) == (7, "agent/fix-7", "main")
    assert [r.path for r in forge.standin.requests] == [f"/api/v1/repos/{REPO}/pulls/7"]


def test_repo_flag_overrides_the_default_before_or_after_the_verb(
    forge: Seeded, agent_env: Path, cli: CLI
) -> None:
    other = forge.standin.add_repo("other-org", "other-repo", org=True)
    other.branches = [("main", "d" * 40)]
    pull = forge.standin.add_issue(other, 7, "Elsewhere")
    pull.is_pull = True

    before = cli("-r", "other-org/other-repo", "pr", "7")
    after = cli("pr", "7", "--repo", "other-org/other-repo")

    assert before.code == after.code == 0, before.err + after.err
    assert json.loads(before.out)["title"] == json.loads(after.out)["title"] == "Elsewhere"
    assert [r.path for r in forge.standin.requests] == [
        "/api/v1/repos/other-org/other-repo/pulls/7"
    ] * 2


def _many_branches(forge: Seeded) -> None:
    forge.repo.branches = [("main", "a" * 40)]
    forge.repo.branches += [(f"deployed/{n:03d}", f"{n:040x}") for n in range(110)]
    forge.repo.branches += [(f"agent-{n}/fix-{n % 3}", f"{n:040x}") for n in range(20)]


def test_branches_follows_link_pages_and_filters_by_prefix(
    forge: Seeded, agent_env: Path, cli: CLI
) -> None:
    _many_branches(forge)

    result = cli("branches", "deployed/")

    assert result.code == 0, result.err
    assert result.out.splitlines() == [f"deployed/{n:03d}" for n in range(110)]
    pages = [r.query["page"] for r in forge.standin.requests_to("GET", "/branches")]
    assert pages == ["1", "2", "3"]


def test_branches_filters_by_glob_and_prints_json(forge: Seeded, agent_env: Path, cli: CLI) -> None:
    _many_branches(forge)

    result = cli("branches", "agent-1*/fix-0", "--json")

    assert result.code == 0, result.err
    found = json.loads(result.out)
    assert [b["name"] for b in found] == ["agent-12/fix-0", "agent-15/fix-0", "agent-18/fix-0"]
    assert found[0]["commit"]["id"] == f"{12:040x}"


def test_branches_without_pattern_lists_all(forge: Seeded, agent_env: Path, cli: CLI) -> None:
    result = cli("branches")

    assert result.code == 0, result.err
    assert result.out == "main\nagent/fix-7\ndeployed/1\n"


def test_pagination_ignores_the_host_in_forgejos_link_header(
    agent_env: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Behind a proxy Forgejo's ROOT_URL is not the address agents use; only `page` counts.
    standin = ForgejoStandin()
    repo, _, _ = seed(standin)
    repo.branches = [(f"b{n:03d}", "e" * 40) for n in range(120)]
    with StandinServer(standin, root_url="http://forge.invalid/") as server:
        monkeypatch.setenv("HIVE_FORGE_URL", server.url)
        result = cli("branches")

    assert result.code == 0, result.err
    assert len(result.out.splitlines()) == 120
    assert len(standin.requests_to("GET", "/branches")) == 3


@pytest.mark.parametrize(
    ("verb", "expected"),
    [
        ("view", ["NUMBER", "--json", "-r OWNER/NAME"]),
        ("comment", ["NUMBER", "--body TEXT", "--body-file PATH", "stdin"]),
        ("assign", ["NUMBER", "USER [USER ...]", "--add"]),
        ("close", ["NUMBER"]),
        ("reopen", ["NUMBER"]),
        ("labels", ["NUMBER", "{add,remove,set}", "NAME ...", "no NAMEs clears"]),
        ("pr", ["NUMBER", "JSON"]),
        ("branches", ["[PATTERN]", "glob"]),
    ],
)
def test_verb_help_prints_its_full_signature(cli: CLI, verb: str, expected: list[str]) -> None:
    result = cli(verb, "--help")

    assert result.code == 0
    assert result.out.startswith(f"usage: hive-forge {verb} ")
    for part in expected:
        assert part in result.out
    assert f"example: hive-forge {verb}" in result.out


def test_every_verb_and_setting_is_documented() -> None:
    from hive_forge.cli import build_parser

    doc = (Path(__file__).parents[2] / "docs" / "hive-forge.md").read_text()
    parser = build_parser()
    verbs = next(a for a in parser._actions if a.dest == "verb").choices
    assert verbs is not None
    for verb in verbs:
        assert f"\nhive-forge {verb} " in doc or f"$ hive-forge {verb} " in doc, verb
    for setting in ("HYPERHIVE_STATE_DIR", "forge-token", "HIVE_FORGE_REPO", "HIVE_FORGE_URL"):
        assert setting in doc
    for flag in ("-r/--repo", "--json", "--body-file", "--add", "-v/--verbose"):
        assert flag in doc

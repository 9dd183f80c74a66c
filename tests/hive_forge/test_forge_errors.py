"""Every hive-forge failure is one clear line on stderr, a non-zero exit, and never the token."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from forge_fixtures import READONLY_TOKEN, REPO, TOKEN, Run, Seeded
from hive_forge.client import ForgeClient, ForgeError, Repo

CLI = Callable[..., Run]


def _assert_one_line_failure(result: Run, code: int, line: str) -> None:
    assert result.code == code
    assert result.out == ""
    assert result.err == f"hive-forge: {line}\n"
    assert TOKEN not in result.err
    assert READONLY_TOKEN not in result.err


def test_missing_token_file(forge: Seeded, agent_env: Path, cli: CLI) -> None:
    (agent_env / "forge-token").unlink()

    result = cli("view", "42")

    _assert_one_line_failure(
        result,
        2,
        f"no forge token: {agent_env / 'forge-token'} does not exist; ask the operator to "
        "provision a Forgejo token for this agent (or set HYPERHIVE_STATE_DIR)",
    )
    assert forge.standin.requests == []


def test_empty_token_file(forge: Seeded, agent_env: Path, cli: CLI) -> None:
    (agent_env / "forge-token").write_text("  \n")

    result = cli("close", "42")

    _assert_one_line_failure(
        result,
        2,
        f"forge token file {agent_env / 'forge-token'} is empty; ask the operator to provision "
        "a Forgejo token",
    )
    assert forge.standin.requests == []


def test_token_file_defaults_to_state(monkeypatch: pytest.MonkeyPatch, cli: CLI) -> None:
    monkeypatch.delenv("HYPERHIVE_STATE_DIR", raising=False)
    monkeypatch.setenv("HIVE_FORGE_REPO", REPO)
    if Path("/state/forge-token").exists():
        pytest.fail("this machine has a /state/forge-token; the default cannot be tested")

    result = cli("view", "42")

    assert result.code == 2
    assert "no forge token: /state/forge-token does not exist" in result.err


def test_rejected_token_is_401(forge: Seeded, agent_env: Path, cli: CLI) -> None:
    (agent_env / "forge-token").write_text("not-a-valid-token-at-all\n")

    result = cli("view", "42")

    _assert_one_line_failure(
        result,
        1,
        f"Forgejo rejected the token from {agent_env / 'forge-token'} (HTTP 401: user does not "
        "exist [uid: 0, name: ]); it is wrong, expired or revoked: ask the operator for a new "
        "forge token",
    )
    assert "not-a-valid-token-at-all" not in result.err
    assert forge.standin.requests[0].authorization == "token not-a-valid-token-at-all"


def test_token_without_write_scope_is_403(forge: Seeded, agent_env: Path, cli: CLI) -> None:
    (agent_env / "forge-token").write_text(READONLY_TOKEN)

    result = cli("comment", "42", "--body", "hello")

    _assert_one_line_failure(
        result,
        1,
        f"permission denied to comment on issue #42 in {REPO} (HTTP 403: token does not have at "
        "least one of required scope(s): [write:issue]); the token's user needs access to the "
        "repository and the token the matching scope (e.g. write:issue): ask the operator",
    )
    assert len(forge.issue.comments) == 3


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (("view", "41"), f"issue #41 not found in {REPO}"),
        (("comment", "41", "--body", "x"), f"issue #41 not found in {REPO}"),
        (("close", "41"), f"issue #41 not found in {REPO}"),
        (("labels", "41", "add", "bug"), f"issue #41 not found in {REPO}"),
        (("pr", "42"), f"pull request #42 not found in {REPO}"),
    ],
)
def test_unknown_issue_is_404_naming_issue_and_repo(
    forge: Seeded, agent_env: Path, cli: CLI, argv: tuple[str, ...], line: str
) -> None:
    result = cli(*argv)

    _assert_one_line_failure(result, 1, line)


@pytest.mark.parametrize("argv", [("view", "42"), ("branches",), ("labels", "42", "add", "bug")])
def test_unknown_repo_is_404_naming_the_repo(
    forge: Seeded, agent_env: Path, cli: CLI, argv: tuple[str, ...]
) -> None:
    result = cli("-r", "hive/nope", *argv)

    _assert_one_line_failure(
        result,
        1,
        f"repository hive/nope not found on {forge.server.url} (or the token's user cannot see "
        "it); check -r/--repo or HIVE_FORGE_REPO",
    )


def test_unknown_label_names_it_and_lists_the_known_ones(
    forge: Seeded, agent_env: Path, cli: CLI
) -> None:
    result = cli("labels", "42", "add", "feature", "wontfix")

    _assert_one_line_failure(
        result,
        1,
        f"unknown label 'wontfix' in {REPO} (known labels: Docs, bug, feature, needs-review)",
    )
    assert forge.standin.requests_to("POST") == []
    assert forge.standin.requests_to("GET", "/orgs/hive/labels"), "org labels must be tried"


def test_network_unreachable(
    forge: Seeded, agent_env: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A port that was just free and is closed again: connection refused, fast and reliable.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HIVE_FORGE_URL", f"http://127.0.0.1:{port}")

    result = cli("view", "42")

    _assert_one_line_failure(
        result,
        1,
        f"cannot reach Forgejo at http://127.0.0.1:{port} (connection refused); check "
        "HIVE_FORGE_URL and that Forgejo is running",
    )


def test_invalid_forge_url(
    forge: Seeded, agent_env: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVE_FORGE_URL", "localhost:3000")

    result = cli("view", "42")

    _assert_one_line_failure(
        result,
        2,
        "HIVE_FORGE_URL must be an http(s) URL like http://localhost:3000, got 'localhost:3000'",
    )


@pytest.mark.parametrize("bad", ["core", "hive/core/x", "/core", "hive/", "hi ve/core", ""])
def test_repo_flag_must_be_owner_slash_name(
    forge: Seeded, agent_env: Path, cli: CLI, bad: str
) -> None:
    result = cli("view", "42", "-r", bad)

    _assert_one_line_failure(
        result, 2, f"-r/--repo must be owner/name (letters, digits, '.', '_', '-'), got {bad!r}"
    )
    assert forge.standin.requests == []


def test_repo_env_must_be_owner_slash_name(
    forge: Seeded, agent_env: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVE_FORGE_REPO", "just-a-name")

    result = cli("view", "42")

    _assert_one_line_failure(
        result,
        2,
        "HIVE_FORGE_REPO must be owner/name (letters, digits, '.', '_', '-'), got 'just-a-name'",
    )


def test_no_repo_configured(
    forge: Seeded, agent_env: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HIVE_FORGE_REPO")

    result = cli("view", "42")

    _assert_one_line_failure(
        result, 2, "no repository: pass -r/--repo OWNER/NAME or set HIVE_FORGE_REPO"
    )


def test_bad_issue_number_is_a_usage_error(forge: Seeded, agent_env: Path, cli: CLI) -> None:
    result = cli("view", "forty-two")

    _assert_one_line_failure(
        result,
        2,
        "argument NUMBER: issue number must be a positive integer, got 'forty-two' "
        "(see `hive-forge view --help`)",
    )


def test_unknown_assignee_explains_forgejos_bare_500(
    forge: Seeded, agent_env: Path, cli: CLI
) -> None:
    result = cli("assign", "42", "ghost")

    _assert_one_line_failure(
        result,
        1,
        f"Forgejo failed to assign issue #42 in {REPO} (HTTP 500); check that user ghost exists "
        f"and can be assigned in {REPO}",
    )


def test_missing_body_file(forge: Seeded, agent_env: Path, cli: CLI, tmp_path: Path) -> None:
    result = cli("comment", "42", "--body-file", str(tmp_path / "nope.md"))

    _assert_one_line_failure(
        result, 2, f"cannot read --body-file {tmp_path / 'nope.md'}: No such file or directory"
    )


async def test_client_surfaces_forgejos_422_for_an_empty_comment(forge: Seeded) -> None:
    client = ForgeClient(forge.server.url, TOKEN, Repo("hive", "core"))
    async with client:
        with pytest.raises(ForgeError) as caught:
            await client.create_comment(42, "")

    assert caught.value.status == 422
    assert str(caught.value) == (
        f"Forgejo refused to comment on issue #42 in {REPO} (HTTP 422: [Body]: Required)"
    )


async def test_client_scrubs_the_token_from_forgejo_messages(forge: Seeded) -> None:
    # Forgejo does not echo tokens, but if anything between ever did, it must not reach the
    # terminal. "user" is a (wrong) token that does appear in Forgejo's 401 message.
    client = ForgeClient(forge.server.url, "user", Repo("hive", "core"))
    async with client:
        with pytest.raises(ForgeError) as caught:
            await client.get_issue(42)

    assert caught.value.status == 401
    assert "(HTTP 401: *** does not exist [uid: 0, name: ])" in str(caught.value)
    assert "user" not in str(caught.value)


async def test_a_silent_forgejo_times_out_with_one_line(forge: Seeded) -> None:
    # Listening but never answering: the kernel completes the TCP handshake from the backlog.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        client = ForgeClient(url, TOKEN, Repo("hive", "core"), timeout_s=0.3)
        async with client:
            with pytest.raises(ForgeError) as caught:
                await client.get_issue(42)

    assert str(caught.value) == (
        f"Forgejo at {url} did not answer within 0.3 s; try again later or check that Forgejo "
        "is healthy"
    )


def test_unknown_label_with_a_token_that_cannot_read_the_org(
    forge: Seeded, agent_env: Path, cli: CLI
) -> None:
    forge.standin.add_token("issues-only", "damocles", read_organization=False)
    (agent_env / "forge-token").write_text("issues-only")

    result = cli("labels", "42", "add", "wontfix")

    _assert_one_line_failure(
        result,
        1,
        f"unknown label 'wontfix' in {REPO} (known labels: Docs, bug, feature, needs-review)",
    )
    assert forge.standin.requests_to("GET", "/orgs/hive/labels"), "the org was asked"


@pytest.mark.parametrize("action", ["add", "remove"])
def test_labels_add_or_remove_needs_names(
    forge: Seeded, agent_env: Path, cli: CLI, action: str
) -> None:
    result = cli("labels", "42", action)

    _assert_one_line_failure(result, 2, f"labels {action} needs at least one label NAME")
    assert forge.standin.requests == []


def test_labels_unknown_action_is_a_usage_error(forge: Seeded, agent_env: Path, cli: CLI) -> None:
    result = cli("labels", "42", "bug")

    assert result.code == 2
    assert "argument action: invalid choice: 'bug'" in result.err
    assert forge.standin.requests == []

"""`hive-forge`: the agents' command line for the hive's Forgejo (issues, labels, PRs, branches).

Configuration comes from the environment: the token from `$HYPERHIVE_STATE_DIR/forge-token`
(default `/state`), the default repository from `$HIVE_FORGE_REPO`, the base URL from
`$HIVE_FORGE_URL` (default `http://localhost:3000`). Errors are one line on stderr and a
non-zero exit: 2 for local configuration and usage, 1 for everything Forgejo or the network
said no to.
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import io
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from hive_forge.client import (
    DEFAULT_URL,
    Branch,
    Comment,
    ConfigError,
    ForgeClient,
    ForgeError,
    Issue,
    Label,
    User,
    parse_repo,
    read_token,
    token_path,
)

logger = logging.getLogger(__name__)

PROG = "hive-forge"
_GLOB_CHARS = frozenset("*?[")


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line like every other hive-forge error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: {message} (see `{self.prog} --help`)\n")


def _issue_number(text: str) -> int:
    digits = text.removeprefix("#")
    if not digits.isdigit() or int(digits) < 1:
        raise argparse.ArgumentTypeError(f"issue number must be a positive integer, got {text!r}")
    return int(digits)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser: global options plus one subparser per verb."""
    # Global options are accepted before or after the verb (`hive-forge -r o/r view 1` and
    # `hive-forge view 1 -r o/r`); SUPPRESS keeps a verb's unset copy from clobbering them.
    common = _Parser(add_help=False)
    common.add_argument(
        "-r",
        "--repo",
        default=argparse.SUPPRESS,
        metavar="OWNER/NAME",
        help="repository to act on (default: $HIVE_FORGE_REPO)",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log each HTTP request (never the token) to stderr",
    )
    structured = _Parser(add_help=False)
    structured.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print Forgejo's JSON objects instead of text",
    )

    parser = _Parser(
        prog=PROG,
        description="Work with the hive's Forgejo: issues, comments, labels, PRs, branches.",
        epilog=(
            "environment: HIVE_FORGE_REPO (default repo), HIVE_FORGE_URL (default "
            f"{DEFAULT_URL}), HYPERHIVE_STATE_DIR (token in <dir>/forge-token, default /state). "
            f"Run `{PROG} <verb> --help` for a verb's full signature."
        ),
        parents=[common, structured],
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=_Parser)

    def verb(name: str, summary: str, example: str, *, json_flag: bool = True) -> _Parser:
        parents = [common, structured] if json_flag else [common]
        sub: _Parser = verbs.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=f"example: {example}",
            parents=parents,
        )
        return sub

    view = verb(
        "view",
        "show an issue or PR: title, state, labels, body and all comments",
        f"{PROG} view 42",
    )
    view.add_argument(
        "number", metavar="NUMBER", type=_issue_number, help="issue or pull request number"
    )

    comment = verb(
        "comment",
        "add a comment to an issue or PR",
        f"{PROG} comment 42 --body-file - <<'EOF' ... EOF",
    )
    comment.add_argument(
        "number", metavar="NUMBER", type=_issue_number, help="issue or pull request number"
    )
    source = comment.add_mutually_exclusive_group(required=True)
    source.add_argument("--body", metavar="TEXT", help="the comment text (Markdown)")
    source.add_argument(
        "--body-file",
        metavar="PATH",
        help="read the comment from PATH, or from stdin when PATH is '-'",
    )

    assign = verb("assign", "set who is assigned to an issue or PR", f"{PROG} assign 42 damocles")
    assign.add_argument(
        "number", metavar="NUMBER", type=_issue_number, help="issue or pull request number"
    )
    assign.add_argument("users", nargs="+", metavar="USER", help="Forgejo user names")
    assign.add_argument(
        "--add",
        action="store_true",
        help="keep the current assignees and add USER(s) (default: replace them)",
    )

    for name, summary in (("close", "close an issue or PR"), ("reopen", "reopen an issue or PR")):
        state = verb(name, summary, f"{PROG} {name} 42")
        state.add_argument(
            "number", metavar="NUMBER", type=_issue_number, help="issue or pull request number"
        )

    labels = verb(
        "labels",
        "show, add, remove or set an issue's labels (by name)",
        f"{PROG} labels 42 add feature needs-review",
    )
    labels.add_argument(
        "number", metavar="NUMBER", type=_issue_number, help="issue or pull request number"
    )
    labels.add_argument(
        "action",
        nargs="?",
        choices=("add", "remove", "set"),
        help="add: add NAMEs; remove: remove NAMEs; set: make NAMEs the only labels "
        "(no NAMEs clears); omitted: show the labels",
    )
    labels.add_argument("names", nargs="*", metavar="NAME", help="label names as shown in Forgejo")

    pr = verb("pr", "print a pull request's metadata as JSON", f"{PROG} pr 7", json_flag=False)
    pr.add_argument("number", metavar="NUMBER", type=_issue_number, help="pull request number")

    branches = verb(
        "branches",
        "list branch names, optionally only those matching a prefix or glob",
        f"{PROG} branches deployed/",
    )
    branches.add_argument(
        "pattern",
        nargs="?",
        metavar="PATTERN",
        help="a prefix (deployed/) or a glob with * ? [ (agent-*/fix-?)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run hive-forge with `argv` (default: `sys.argv[1:]`); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else 2
    _guard_stdout()
    logging.basicConfig(format=f"{PROG}: %(message)s", stream=sys.stderr)
    if getattr(args, "verbose", False):
        logging.getLogger("hive_forge").setLevel(logging.DEBUG)
    try:
        client = _client_from_env(getattr(args, "repo", None))
        if args.verb == "comment":
            body = _read_body(args.body, args.body_file)
            return asyncio.run(_comment(client, args.number, body, _json(args)))
        return asyncio.run(_dispatch(client, args))
    except ForgeError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def _client_from_env(repo_arg: str | None) -> ForgeClient:
    env = os.environ
    if repo_arg is not None:
        repo = parse_repo(repo_arg, "-r/--repo")
    elif env.get("HIVE_FORGE_REPO"):
        repo = parse_repo(env["HIVE_FORGE_REPO"], "HIVE_FORGE_REPO")
    else:
        raise ConfigError("no repository: pass -r/--repo OWNER/NAME or set HIVE_FORGE_REPO")
    path = token_path(env.get("HYPERHIVE_STATE_DIR"))
    token = read_token(path)
    return ForgeClient(
        env.get("HIVE_FORGE_URL") or DEFAULT_URL, token, repo, token_source=str(path)
    )


def _read_body(body: str | None, body_file: str | None) -> str:
    if body is None:
        assert body_file is not None  # argparse's required mutually exclusive group
        # Bytes, then UTF-8: text mode would translate line endings and follow the locale,
        # and the body must reach Forgejo exactly as written.
        try:
            raw = sys.stdin.buffer.read() if body_file == "-" else Path(body_file).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read --body-file {body_file}: {exc.strerror}") from None
        where = "stdin" if body_file == "-" else body_file
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"--body-file {where} is not UTF-8 text") from None
    if not body.strip():
        raise ConfigError("the comment is empty; pass text with --body or --body-file PATH|-")
    return body


async def _dispatch(client: ForgeClient, args: argparse.Namespace) -> int:
    as_json = _json(args)
    async with client:
        if args.verb == "view":
            issue = await client.get_issue(args.number)
            comments = await client.list_comments(args.number)
            if as_json:
                _print_json({"issue": issue, "comments": comments})
            else:
                print(_render_issue(issue, comments), end="")
        elif args.verb == "assign":
            users: list[str] = list(dict.fromkeys(args.users))
            if args.add:
                current = await client.get_issue(args.number)
                users = list(
                    dict.fromkeys([u["login"] for u in current["assignees"] or []] + users)
                )
            issue = await client.edit_issue(
                args.number,
                {"assignees": users},
                action="assign",
                hint=_assign_hint(users, str(client.repo)),
            )
            _print_issue_change(issue, as_json, f"assignees: {_logins(issue['assignees'])}")
        elif args.verb in ("close", "reopen"):
            state = "closed" if args.verb == "close" else "open"
            issue = await client.edit_issue(args.number, {"state": state}, action=args.verb)
            _print_issue_change(issue, as_json, issue["state"])
        elif args.verb == "labels":
            await _labels(client, args.number, args.action, args.names, as_json)
        elif args.verb == "pr":
            _print_json(await client.get_pull(args.number))
        elif args.verb == "branches":
            found = _filter_branches(await client.list_branches(), args.pattern)
            if as_json:
                _print_json(found)
            else:
                for branch in found:
                    print(branch["name"])
    return 0


async def _comment(client: ForgeClient, number: int, body: str, as_json: bool) -> int:
    async with client:
        created = await client.create_comment(number, body)
    if as_json:
        _print_json(created)
    else:
        print(f"commented on #{number}: {created['html_url']}")
    return 0


async def _labels(
    client: ForgeClient, number: int, action: str | None, names: list[str], as_json: bool
) -> None:
    if action in ("add", "remove") and not names:
        raise ConfigError(f"labels {action} needs at least one label NAME")
    wanted = await client.resolve_labels(names) if names else []
    ids = list(dict.fromkeys(label["id"] for label in wanted))
    if action == "add":
        result = await client.add_labels(number, ids)
    elif action == "set" and ids:
        result = await client.replace_labels(number, ids)
    elif action == "set":
        await client.clear_labels(number)
        result = []
    else:
        if action == "remove":
            for label_id in ids:
                await client.remove_label(number, label_id)
        result = await client.list_issue_labels(number)
    if as_json:
        _print_json(result)
    elif result:
        print(f"#{number} labels: {', '.join(label['name'] for label in result)}")
    else:
        print(f"#{number} has no labels")


def _filter_branches(branches: list[Branch], pattern: str | None) -> list[Branch]:
    if not pattern:
        return branches
    if _GLOB_CHARS & set(pattern):
        return [b for b in branches if fnmatch.fnmatchcase(b["name"], pattern)]
    return [b for b in branches if b["name"].startswith(pattern)]


def _assign_hint(users: list[str], repo: str) -> str:
    # Forgejo answers an unknown assignee with a bare 500, so say what usually causes it.
    if len(users) == 1:
        return f"check that user {users[0]} exists and can be assigned in {repo}"
    return f"check that users {', '.join(users)} exist and can be assigned in {repo}"


def _logins(users: list[User] | None) -> str:
    return ", ".join(user["login"] for user in users or []) or "nobody"


def _print_issue_change(issue: Issue, as_json: bool, summary: str) -> None:
    if as_json:
        _print_json(issue)
    else:
        print(f"#{issue['number']} {summary}")


def _render_issue(issue: Issue, comments: list[Comment]) -> str:
    kind = "pull request" if issue.get("pull_request") else "issue"
    labels: list[Label] = issue["labels"] or []
    lines = [
        f"#{issue['number']} [{issue['state']}] {issue['title']}",
        f"{kind} by {issue['user']['login']} at {issue['created_at']}",
        f"labels: {', '.join(label['name'] for label in labels) or 'none'}",
        f"assignees: {_logins(issue['assignees'])}",
        f"url: {issue['html_url']}",
        "",
        issue["body"].rstrip("\n") or "(no description)",
    ]
    for position, comment in enumerate(comments, start=1):
        lines += [
            "",
            f"--- comment {position}/{len(comments)} by {comment['user']['login']} at "
            f"{comment['created_at']} ---",
            comment["body"].rstrip("\n"),
        ]
    if not comments:
        lines += ["", "(no comments)"]
    return "\n".join(lines) + "\n"


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _guard_stdout() -> None:
    # Issue text is full of non-ASCII (dashes, emoji); a C-locale container must not turn
    # that into a UnicodeEncodeError traceback.
    if isinstance(sys.stdout, io.TextIOWrapper) and sys.stdout.encoding.lower() not in (
        "utf-8",
        "utf8",
    ):
        sys.stdout.reconfigure(errors="backslashreplace")

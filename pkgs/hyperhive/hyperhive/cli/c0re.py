"""hive-c0re: `serve` runs the daemon; every other verb is a thin client of host.sock."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from hyperhive.agents.names import OPERATOR
from hyperhive.errors import HyperhiveError, InvalidRequest
from hyperhive.settings import Settings
from hyperhive.wire import requests as rq
from hyperhive.wire.client import SocketClient
from hyperhive.wire.responses import (
    NEEDS_LOGIN_HINT,
    AgentInfo,
    AgentsReply,
    ApprovalsReply,
    Err,
    LoginReply,
    Ok,
    QuestionsReply,
    RecentReply,
    RecentRow,
    Reply,
)


def _when(ts: int | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _state(agent: AgentInfo) -> str:
    return f"{agent.state} (needs login)" if agent.needs_login else agent.state


def render(reply: Reply) -> str:
    """Human-readable text of a reply."""
    match reply:
        case AgentsReply(items=items):
            if not items:
                return "no agents"
            hosts = len({a.host for a in items}) > 1  # a hive of several hosts
            lines = [f"{'NAME':<10} {'ROLE':<8} {'STATE':<24} {'PORT':<5} CREATED"]
            lines[0] += "             HOST" if hosts else ""
            lines += [
                f"{a.name:<10} {a.role:<8} {_state(a):<24} {a.port:<5} {_when(a.created_at)}"
                + (f"  {a.host}" if hosts else "")
                for a in items
            ]
            waiting = [a.name for a in items if a.needs_login]
            if waiting:
                lines += [
                    "",
                    f"{', '.join(waiting)}: {NEEDS_LOGIN_HINT}"
                    " (`hive-c0re login` prints the dashboard's URL).",
                ]
            return "\n".join(lines)
        case ApprovalsReply(items=items):
            if not items:
                return "no pending approvals"
            return "\n".join(
                f"#{a.id} {a.kind_} {a.agent} {a.fetched_sha or ''} {a.description}".rstrip()
                for a in items
            )
        case QuestionsReply(items=items):
            if not items:
                return "no open questions"
            out = []
            for q in items:
                line = f"#{q.id} from {q.asker}: {q.question}"
                if q.options:
                    line += f"  [options: {' | '.join(q.options)}{' (multi)' if q.multi else ''}]"
                if q.deadline_at:
                    line += f"  (expires {_when(q.deadline_at)})"
                out.append(line)
            return "\n".join(out)
        case RecentReply(rows=rows):
            return "\n".join(f"#{r.id} {r.sender} -> {r.recipient}: {r.body}" for r in rows)
        case LoginReply(url=url):
            port = urlsplit(url).port or 7000  # the dashboard's real port, not the default
            return (
                f"open this URL in your browser to log the dashboard in:\n\n  {url}\n\n"
                "It holds the operator key: do not paste it anywhere else. From another"
                f" machine: ssh -L {port}:127.0.0.1:{port} <host>, then open it there."
                " `hive-c0re rotate-token` ends every session."
            )
        case Ok(message=message, id=id_, ids=ids):
            if message:
                return message
            if ids is not None:
                return "sent (message id " + ", ".join(map(str, ids)) + ")"
            return "ok" if id_ is None else f"ok #{id_}"
    return reply.model_dump_json(by_alias=True)


Build = Callable[[argparse.Namespace], BaseModel]


def _message_text(body: str) -> str:
    """The operator's message as typed; refused when blank, as the dashboard's T4LK does."""
    if not body.strip():
        raise InvalidRequest("the message is empty: type something to send")
    return body


VERBS: dict[str, tuple[str, list[tuple[str, dict[str, object]]], Build]] = {
    "list": ("list agents, tombstones included", [], lambda a: rq.ListAgents()),
    "send": (
        "send a message as the operator",
        [
            ("to", {"help": "agent name, manager, or * for every agent"}),
            ("body", {"help": "the message text"}),
        ],
        lambda a: rq.Send(to=a.to, body=_message_text(a.body)),
    ),
    "read": (
        "mark the operator's inbox read (frees the senders' unacked-bytes allowance)",
        [("--up-to", {"type": int, "help": "only messages with ids up to this one"})],
        lambda a: rq.ReadInbox(up_to=a.up_to),
    ),
    "pending": ("list pending approvals", [], lambda a: rq.Pending()),
    "approve": (
        "approve a pending approval",
        [("id", {"type": int, "help": "approval id"})],
        lambda a: rq.Approve(id=a.id),
    ),
    "diff": (
        "show what an apply_commit approval would deploy (a unified diff)",
        [("id", {"type": int, "help": "approval id"})],
        lambda a: rq.Diff(id=a.id),
    ),
    "deny": (
        "deny a pending approval",
        [
            ("id", {"type": int, "help": "approval id"}),
            ("--note", {"help": "why (shown to the manager)"}),
        ],
        lambda a: rq.Deny(id=a.id, note=a.note),
    ),
    "questions": ("list open operator questions", [], lambda a: rq.Questions()),
    "answer": (
        "answer an operator question",
        [("id", {"type": int, "help": "question id"}), ("answer", {"help": "your answer"})],
        lambda a: rq.Answer(id=a.id, answer=a.answer),
    ),
    "cancel-question": (
        "resolve an operator question as [cancelled]",
        [("id", {"type": int, "help": "question id"})],
        lambda a: rq.CancelQuestion(id=a.id),
    ),
    "spawn": (
        "create and start an agent now (no approval)",
        [
            (
                "name",
                {"help": "1-9 chars: a-z first, then a-z 0-9, a single - only between two of them"},
            )
        ],
        lambda a: rq.Spawn(name=a.name),
    ),
    "request-spawn": (
        "queue a spawn for approval",
        [("name", {"help": "agent name"}), ("--description", {"default": ""})],
        lambda a: rq.RequestSpawn(name=a.name, description=a.description),
    ),
    "kill": ("stop an agent", [("name", {})], lambda a: rq.Kill(name=a.name)),
    "start": ("start a stopped agent", [("name", {})], lambda a: rq.Start(name=a.name)),
    "restart": ("restart an agent", [("name", {})], lambda a: rq.Restart(name=a.name)),
    "rebuild": (
        "reconcile an agent: build from its applied repo, stop, start",
        [("name", {})],
        lambda a: rq.Rebuild(name=a.name),
    ),
    "update": (
        "rebuild an agent from its applied repo (the manager's name for rebuild)",
        [("name", {})],
        lambda a: rq.Update(name=a.name),
    ),
    "revive": (
        "bring back a destroyed agent with its kept state and credentials",
        [("name", {})],
        lambda a: rq.Revive(name=a.name),
    ),
    "request-apply-commit": (
        "queue a commit of an agent's proposed config repo for approval",
        [
            ("agent", {"help": "agent name"}),
            ("commit", {"help": "commit sha (7-40 hex digits) in the proposed repo"}),
            ("--description", {"default": ""}),
        ],
        lambda a: rq.RequestApplyCommit(
            agent=a.agent, commit_ref=a.commit, description=a.description
        ),
    ),
    "login": (
        "print the URL that logs a browser in to the dashboard (it holds the operator key)",
        [],
        lambda a: rq.Login(),
    ),
    "rotate-token": (
        "replace the operator secret: every browser session (dashboard, agent pages) ends",
        [],
        lambda a: rq.RotateToken(),
    ),
    "destroy": (
        "remove an agent's container (state is kept unless --purge)",
        [
            ("name", {}),
            ("--purge", {"action": "store_true", "help": "also delete its state: no undo"}),
        ],
        lambda a: rq.Destroy(name=a.name, purge=a.purge),
    ),
}


def parser() -> argparse.ArgumentParser:
    """The argv grammar."""
    top = argparse.ArgumentParser(
        prog="hive-c0re", description="hyperhive host daemon and admin CLI."
    )
    top.add_argument("--json", action="store_true", help="print the raw JSON reply")
    top.add_argument(
        "--socket", type=Path, help="admin socket (default: $HYPERHIVE_RUN_DIR/host.sock)"
    )
    sub = top.add_subparsers(dest="verb", required=True, metavar="VERB")
    serve = sub.add_parser("serve", help="run the daemon in the foreground")
    serve.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    serve.add_argument(
        "--login-url",
        action="store_true",
        help="print the dashboard's login URL when ready, if stdout is a terminal",
    )
    inbox = sub.add_parser(
        "inbox",
        help="the operator's inbox: what agents sent you, newest last",
        description="Messages addressed to operator (agents' replies), newest last.",
    )
    inbox.add_argument("-n", "--limit", type=int, default=20, help="how many (default 20)")
    inbox.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new ones (Ctrl-C ends)"
    )
    for verb, (help_text, args, _) in VERBS.items():
        p = sub.add_parser(verb, help=help_text, description=help_text)
        for flag, options in args:
            p.add_argument(flag, **options)  # type: ignore[arg-type]
    return top


INBOX_POLL_SECONDS = 1.0


def _message_line(row: RecentRow) -> str:
    reply = f" (re #{row.in_reply_to})" if row.in_reply_to else ""
    return f"#{row.id} {_when(row.sent_at)} {row.sender}{reply}: {row.body}"


async def _inbox(socket: Path, limit: int, follow: bool, as_json: bool) -> int:
    """Print the operator's inbox (the latest `limit`); with `follow`, then every new one."""
    request = rq.Recent(limit=500).model_dump_json().encode() + b"\n"
    seen = 0
    async with await SocketClient.connect(socket) as client:
        while True:
            reply = await client.call_raw(request)
            if not isinstance(reply, RecentReply):
                message = reply.message if isinstance(reply, Err) else str(reply)
                print(f"hive-c0re inbox: {message}", file=sys.stderr)
                return 1
            rows = [r for r in reply.rows if r.recipient == OPERATOR and r.id > seen]
            if not seen:
                rows = rows[-limit:]
                if not rows and not follow:
                    print("no messages for the operator yet")
            for row in rows:
                if as_json:
                    print(row.model_dump_json(by_alias=True), flush=True)
                else:
                    print(_message_line(row), flush=True)
            seen = max([seen, *(r.id for r in reply.rows)])
            if not follow:
                return 0
            await asyncio.sleep(INBOX_POLL_SECONDS)


async def _call(socket: Path, request: BaseModel) -> Reply:
    async with await SocketClient.connect(socket) as client:
        return await client.call_raw(request.model_dump_json().encode() + b"\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `hive-c0re`."""
    args = parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors():
            where = "HYPERHIVE_" + "_".join(str(part) for part in error["loc"]).upper()
            # pydantic prefixes a validator's own message with "Value error, "
            reason = str(error["msg"]).removeprefix("Value error, ")
            print(f"hive-c0re: bad {where}: {reason}", file=sys.stderr)
        return 2
    if args.verb == "serve":
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO,
            format="%(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        from hyperhive.cli.c0re_serve import serve

        try:
            asyncio.run(serve(settings, print_login_url=args.login_url))
        except HyperhiveError as exc:
            print(f"hive-c0re: {exc.message}", file=sys.stderr)
            return 1
        return 0
    if args.verb == "inbox":
        if not 1 <= args.limit <= 500:
            print("hive-c0re inbox: --limit must be between 1 and 500", file=sys.stderr)
            return 2
        try:
            return asyncio.run(
                _inbox(args.socket or settings.host_socket, args.limit, args.follow, args.json)
            )
        except HyperhiveError as exc:
            print(f"hive-c0re: {exc.message}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0
    _, _, build = VERBS[args.verb]
    try:
        request = build(args)
        reply = asyncio.run(_call(args.socket or settings.host_socket, request))
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        print(f"hive-c0re {args.verb}: {field}: {error['msg']}", file=sys.stderr)
        return 1
    except HyperhiveError as exc:
        print(f"hive-c0re: {exc.message}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(reply.model_dump(by_alias=True, mode="json")))
    elif isinstance(reply, Err):
        print(f"hive-c0re {args.verb}: {reply.message}", file=sys.stderr)
    else:
        print(render(reply))
    return 1 if isinstance(reply, Err) else 0


if __name__ == "__main__":
    sys.exit(main())

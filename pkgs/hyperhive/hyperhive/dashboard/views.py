"""What the dashboard shows: the `/api/state` snapshot and the HTML of every item in it.

The page is a set of keyed lists (containers, questions, approvals, ...). Each item is
rendered by one jinja macro, on the server, for the first page, for the snapshot and for
every SSE frame, so the browser never builds markup itself: it inserts, replaces or removes
items by `data-key`, and keeps an item untouched when its `data-v` (a hash of its data) is
unchanged. That is what keeps typed text, focus and open panels across live updates.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from hyperhive.agents.names import MANAGER, OPERATOR, agent_port, container_name
from hyperhive.agents.store import AgentState
from hyperhive.approvals.store import ApprovalStatus
from hyperhive.dashboard.services import HiveServices
from hyperhive.hub import Change

Json = dict[str, Any]

FLOW_LIMIT = 200
"""Messages in the snapshot's message flow (older ones come from /dashboard/history)."""
INBOX_LIMIT = 50
"""Latest messages to `operator` in the snapshot."""

TRANSIENT = frozenset(
    {
        AgentState.SPAWNING,
        AgentState.STARTING,
        AgentState.STOPPING,
        AgentState.RESTARTING,
        AgentState.REBUILDING,
        AgentState.DESTROYING,
    }
)


TEMPLATES = Path(__file__).parent / "templates"


BODY_CLIP = 2000
"""Characters of a message body shown in the flow and the inbox."""


def readable_body(body: str) -> str:
    """A system event's JSON as `event · key value · ...` (fields without a value left
    out); long bodies clipped."""
    if body.startswith("{"):
        try:
            event = json.loads(body)
        except ValueError:
            event = None
        if isinstance(event, dict) and isinstance(event.get("event"), str):
            rest = [
                f"{k} {v if isinstance(v, str) else json.dumps(v)}"
                for k, v in event.items()
                if k != "event" and v is not None
            ]
            body = " · ".join([event["event"], *rest])
    if len(body) > BODY_CLIP:
        return f"{body[:BODY_CLIP]}… ({len(body) - BODY_CLIP} more characters)"
    return body


def clip_row(row: Json) -> Json:
    """A message row for the snapshot: its body cut at BODY_CLIP characters, with how many
    were cut in `clipped` (one 256 KiB body must not make /api/state megabytes)."""
    body = row.get("body")
    if isinstance(body, str) and len(body) > BODY_CLIP:
        return {**row, "body": body[:BODY_CLIP], "clipped": len(body) - BODY_CLIP}
    return row


def version(data: object) -> str:
    """A short hash of an item's data: an unchanged item keeps its DOM node."""
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.blake2s(text.encode(), digest_size=6).hexdigest()


def agent_view(record: Json) -> Json:
    """An agent record (registry JSON) plus what the page derives from its name."""
    name = str(record["name"])
    return {
        **record,
        "port": agent_port(name),
        "container": container_name(name),  # type: ignore[arg-type]
        "manager": name == MANAGER,
        "transient": record.get("state") in TRANSIENT,
    }


def live_agent_view(record: Json, hive: HiveServices) -> Json:
    """agent_view plus the badges the lifecycle knows now: stale flake, needs login, and
    the deployed sha (read from the agent's files at render time)."""
    view = agent_view(record)
    # A hive on PostgreSQL may span hosts: every row names its host; another host's
    # agent is shown, but its container, files and page are on that host.
    view["shared"] = hive.registry.shared
    view["remote"] = record.get("host", hive.registry.host) != hive.registry.host
    if record.get("state") == AgentState.DESTROYED or view["remote"]:
        return view
    name = str(record["name"])
    lifecycle = hive.lifecycle
    view["deployed_sha"], view["stale"] = lifecycle.deployment(name)
    view["needs_login"] = not lifecycle.logged_in(name)
    if lifecycle.backend.name == "local":
        view["container"] = ""  # plain processes: there is no container to name
    return view


def port_conflicts(agents: Iterable[Json], pending: Iterable[Json]) -> list[Json]:
    """Web UI ports claimed by more than one live agent or pending spawn (SPEC §3)."""
    claims: dict[int, list[str]] = {}
    for agent in agents:
        claims.setdefault(agent_port(agent["name"]), []).append(agent["name"])
    for approval in pending:
        if approval["kind"] == "spawn":
            label = f"{approval['agent']} (spawn request #{approval['id']})"
            claims.setdefault(agent_port(approval["agent"]), []).append(label)
    return [
        {"port": port, "agents": names} for port, names in sorted(claims.items()) if len(names) > 1
    ]


def page_size(hive: HiveServices) -> int:
    """Items per bounded section (HYPERHIVE_DASHBOARD_PAGE_SIZE)."""
    return hive.settings.dashboard_page_size


def more_line(list_name: str, shown: int, total: int) -> Json:
    """The data of a section's "showing N of M" line."""
    return {"list": list_name, "shown": shown, "total": total}


def snapshot(hive: HiveServices, recent: RecentMessages) -> Json:
    """Everything the page shows, with the change-feed `seq` it is consistent with.

    `seq` is the last change the fan-out has taken in, which may trail the hub by changes
    still queued for it: the rest of the snapshot is read now (newer), and the frames of
    those queued changes are upserts and removals by key, so replaying them is harmless.

    Bounded whatever agents do (issue 13): questions, approvals and kept state hold at
    most one page each (oldest first: the operator works from the front), `totals` counts
    them all; the flow and inbox are the latest FLOW_LIMIT / INBOX_LIMIT messages with
    their bodies clipped.
    """
    page = page_size(hive)
    records = [r.as_json() for r in hive.registry.all()]
    agents = [live_agent_view(r, hive) for r in records if r["state"] != AgentState.DESTROYED]
    tombstones = [agent_view(r) for r in records if r["state"] == AgentState.DESTROYED]
    approvals = [a.model_dump(by_alias=True) for a in hive.approvals.list_pending()]
    totals = {
        "questions": hive.questions.count_open(),
        "approvals": len(approvals),
        "tombstones": len(tombstones),
        "inbox_unread": hive.broker.unread(OPERATOR),
    }
    return {
        "seq": recent.seq,
        "backend": hive.lifecycle.backend.name,
        # a hive on several hosts: which one this dashboard is (its verbs act here)
        "host": hive.registry.host if hive.registry.shared else "",
        "page_size": page,
        "totals": totals,
        "agents": agents,
        "tombstones": tombstones[:page],
        "questions": [q.model_dump() for q in hive.questions.list_open(limit=page)],
        "approvals": approvals[:page],
        "inbox": list(recent.inbox),
        "messages": list(recent.flow),
        "port_conflicts": port_conflicts(agents, approvals),
    }


class RecentMessages:
    """The latest messages of the flow and of the operator's inbox, kept from the feed.

    Loaded once from sqlite, then appended from `message` changes, so a snapshot costs no
    message query (SPEC §18: `/api/state` with 10,000 messages in ≤ 50 ms).
    """

    def __init__(self, hive: HiveServices) -> None:
        # No await between reading and the caller subscribing: nothing can slip between.
        self.seq = hive.hub.seq
        self.flow: deque[Json] = deque(
            (clip_row(m.model_dump(by_alias=True)) for m in hive.broker.recent_all(FLOW_LIMIT)),
            maxlen=FLOW_LIMIT,
        )
        self.inbox: deque[Json] = deque(
            (
                clip_row(m.model_dump(by_alias=True))
                for m in hive.broker.recent(OPERATOR, INBOX_LIMIT * 2)
                if m.recipient == OPERATOR
            ),
            maxlen=INBOX_LIMIT,
        )

    def take(self, change: Change) -> None:
        """Account for one change from the feed."""
        self.seq = change.seq
        if change.kind == "message":
            row = clip_row(change.data)
            self.flow.append(row)
            if row.get("to") == OPERATOR:
                self.inbox.append(row)


@dataclass(frozen=True)
class Op:
    """One change to one keyed list: upsert `key` (html) or remove it (html None).

    With `key` None, `html` is the whole list's new content (reconciled by key).
    """

    list: str
    key: str | None
    html: str | None

    def as_json(self) -> Json:
        """The op as sent in an SSE frame."""
        return {"list": self.list, "key": self.key, "html": self.html}


class Renderer:
    """The jinja environment: the page, and one macro per list item."""

    def __init__(self) -> None:
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["short"] = lambda sha: (sha or "")[:10]
        self.env.filters["readable"] = readable_body
        self.env.globals["version"] = version
        module = self.env.get_template("items.html").module
        self._macros: dict[str, Callable[..., Markup]] = {
            "banner": module.banner,  # type: ignore[attr-defined]
            "containers": module.agent_row,  # type: ignore[attr-defined]
            "tombstones": module.tombstone,  # type: ignore[attr-defined]
            "questions": module.question,  # type: ignore[attr-defined]
            "inbox": module.message,  # type: ignore[attr-defined]
            "approvals": module.approval,  # type: ignore[attr-defined]
            "flow": module.message,  # type: ignore[attr-defined]
            "recipients": module.recipient,  # type: ignore[attr-defined]
        }
        self._more: Callable[..., Markup] = module.more  # type: ignore[attr-defined]

    def item(self, list_name: str, data: Json) -> str:
        """The HTML of one item of `list_name`."""
        return str(self._macros[list_name](data, version(data)))

    def items(self, list_name: str, items: Iterable[Json]) -> str:
        """The HTML of a whole list."""
        return "".join(self.item(list_name, data) for data in items)

    def more(self, list_name: str, shown: int, total: int) -> str:
        """A bounded section's "showing N of M" line ('' when everything is shown)."""
        if total <= shown:
            return ""
        data = more_line(list_name, shown, total)
        return str(self._more(data, version(data)))

    def paged(self, list_name: str, items: list[Json], total: int) -> str:
        """A bounded section: its items, then the "showing N of M" line if any."""
        return self.items(list_name, items) + self.more(list_name, len(items), total)

    def lists(self, snap: Json) -> dict[str, str]:
        """Every list of the page, rendered from a snapshot."""
        totals = snap["totals"]
        return {
            "banner": self.items("banner", snap["port_conflicts"]),
            "containers": self.items("containers", snap["agents"]),
            "tombstones": self.paged("tombstones", snap["tombstones"], totals["tombstones"]),
            "questions": self.paged("questions", snap["questions"], totals["questions"]),
            "inbox": self.items("inbox", snap["inbox"]),
            "approvals": self.paged("approvals", snap["approvals"], totals["approvals"]),
            "flow": self.items("flow", snap["messages"]),
            "recipients": self.items("recipients", snap["agents"]),
        }

    def page(self, snap: Json) -> str:
        """The full page at the snapshot's seq."""
        # Markup: the lists were rendered by our own autoescaping macros.
        lists = {name: Markup(html) for name, html in self.lists(snap).items()}
        return self.env.get_template("page.html").render(snap=snap, lists=lists)

    def ops(self, change: Change, hive: HiveServices) -> list[Op]:
        """What one change does to the page's lists."""
        data = change.data
        match change.kind:
            case "message":
                ops = [Op("flow", f"m-{data['id']}", self.item("flow", data))]
                if data.get("to") == OPERATOR:
                    ops.append(Op("inbox", f"m-{data['id']}", self.item("inbox", data)))
                return ops
            case "question":
                return self._question_ops(data, hive)
            case "approval":
                return [self._approval_ops(data, hive), self._banner(hive)]
            case "agent":
                return [*self._agent_ops(data, hive), self._banner(hive)]
        return []

    def _question_ops(self, data: Json, hive: HiveServices) -> list[Op]:
        """Only the first page of open questions is on the page: a question beyond it
        changes only the count line; one resolved inside it while more wait lets the next
        one in (the whole section is sent again, reconciled by key)."""
        page = page_size(hive)
        total = hive.questions.count_open()
        key = f"q-{data['id']}"
        open_ = data.get("answered_at") is None
        if total < page or (total == page and open_):
            # everything fits: the item itself, and no count line
            item = self.item("questions", data) if open_ else None
            return [Op("questions", key, item), Op("questions", "more-questions", None)]
        if open_ and hive.questions.count_open_before(int(data["id"])) >= page:
            more = self.more("questions", page, total)
            return [Op("questions", "more-questions", more)]
        shown = [q.model_dump() for q in hive.questions.list_open(limit=page)]
        return [Op("questions", None, self.paged("questions", shown, total))]

    def _approval_ops(self, data: Json, hive: HiveServices) -> Op:
        key = f"a-{data['id']}"
        pending = data.get("status") == ApprovalStatus.PENDING
        page = page_size(hive)
        approvals = hive.approvals.list_pending()
        if len(approvals) < page or (len(approvals) == page and pending):
            return Op("approvals", key, self.item("approvals", data) if pending else None)
        shown = [a.model_dump(by_alias=True) for a in approvals[:page]]
        return Op("approvals", None, self.paged("approvals", shown, len(approvals)))

    def _agent_ops(self, data: Json, hive: HiveServices) -> list[Op]:
        key = f"agent-{data['name']}"
        if data.get("purged"):
            return [Op(name, key, None) for name in ("containers", "tombstones", "recipients")]
        view = live_agent_view(data, hive)
        if data.get("state") == AgentState.DESTROYED:
            return [
                Op("containers", key, None),
                Op("recipients", key, None),
                Op("tombstones", key, self.item("tombstones", view)),
            ]
        return [
            Op("containers", key, self.item("containers", view)),
            Op("recipients", key, self.item("recipients", view)),
            Op("tombstones", key, None),
        ]

    def _banner(self, hive: HiveServices) -> Op:
        agents = [r.as_json() for r in hive.registry.all() if r.live]
        pending = [a.model_dump(by_alias=True) for a in hive.approvals.list_pending()]
        return Op("banner", None, self.items("banner", port_conflicts(agents, pending)))

"""Every response a socket sends, as one discriminated union on `kind`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

NEEDS_LOGIN_HINT = (
    "needs a Claude login and answers nothing until it has one: open its page from the"
    " dashboard's link and use L0G1N there, or export ANTHROPIC_API_KEY and restart hive-c0re"
)
"""What the operator is told about an agent without a login (CLI, dashboard, send)."""


class Reply(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True)


class Ok(Reply):
    """Done. `id`/`ids` name what was created, when something was."""

    kind: Literal["ok"] = "ok"
    message: str | None = None
    id: int | None = None
    ids: list[int] | None = None


class Err(Reply):
    """Refused: `message` says what was wrong and what to do."""

    kind: Literal["err"] = "err"
    message: str


class MessageItem(Reply):
    """One message as its recipient sees it."""

    id: int
    sender: str = Field(alias="from")
    body: str
    sent_at: int
    in_reply_to: int | None = None
    broadcast: bool = False
    redelivered: bool = False


class Messages(Reply):
    """Messages popped by recv (now delivered, not yet acked)."""

    kind: Literal["messages"] = "messages"
    items: list[MessageItem]


class Empty(Reply):
    """recv found nothing within its wait."""

    kind: Literal["empty"] = "empty"


class StatusReply(Reply):
    """The caller's unread count."""

    kind: Literal["status"] = "status"
    unread: int


class RecentRow(Reply):
    """A message in someone's recent traffic (non-consuming view)."""

    id: int
    sender: str = Field(alias="from")
    recipient: str = Field(alias="to")
    body: str
    sent_at: int
    delivered: bool
    acked: bool
    in_reply_to: int | None = None
    broadcast: bool = False


class RecentReply(Reply):
    """Recent messages, newest last."""

    kind: Literal["recent"] = "recent"
    rows: list[RecentRow]


class QuestionQueued(Reply):
    """The question is stored; the answer arrives as an operator_answered event."""

    kind: Literal["question_queued"] = "question_queued"
    id: int


class WhoamiReply(Reply):
    """The identity this socket carries."""

    kind: Literal["whoami"] = "whoami"
    name: str
    role: str
    port: int | None = None


class AgentInfo(Reply):
    """One known agent."""

    name: str
    role: str
    state: str
    port: int
    created_at: int
    destroyed_at: int | None = None
    needs_login: bool = False
    """No Claude credentials and no API key: it takes no turn until logged in."""
    host: str = ""
    """The host whose daemon runs it."""


class AgentsReply(Reply):
    """Known agents (tombstones included, with their destroyed_at)."""

    kind: Literal["agents"] = "agents"
    items: list[AgentInfo]


class ApprovalInfo(Reply):
    """One approval row (SPEC §8)."""

    id: int
    agent: str
    kind_: str = Field(alias="kind")
    commit_ref: str | None = None
    fetched_sha: str | None = None
    description: str
    requested_at: int
    status: str
    resolved_at: int | None = None
    note: str | None = None
    host: str = ""
    """The host that carries it out (the one that runs its agent)."""


class ApprovalsReply(Reply):
    """Approvals, oldest first."""

    kind: Literal["approvals"] = "approvals"
    items: list[ApprovalInfo]


class QuestionInfo(Reply):
    """One operator question (SPEC §9)."""

    id: int
    asker: str
    question: str
    options: list[str]
    multi: bool
    asked_at: int
    deadline_at: int | None = None
    answered_at: int | None = None
    answer: str | None = None


class QuestionsReply(Reply):
    """Operator questions, oldest first."""

    kind: Literal["questions"] = "questions"
    items: list[QuestionInfo]


class LoginReply(Reply):
    """The dashboard's login URL; the key is in its #fragment (print it to a terminal only)."""

    kind: Literal["login"] = "login"
    url: str


Response = Annotated[
    Ok
    | Err
    | Messages
    | Empty
    | StatusReply
    | RecentReply
    | QuestionQueued
    | WhoamiReply
    | AgentsReply
    | ApprovalsReply
    | QuestionsReply
    | LoginReply,
    Field(discriminator="kind"),
]
RESPONSE: TypeAdapter[Response] = TypeAdapter(Response)


def encode(response: Reply) -> bytes:
    """One response as a JSON line."""
    return response.model_dump_json(by_alias=True).encode() + b"\n"

"""Every request a socket accepts, as one discriminated union on `cmd`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

MAX_WAIT_SECONDS = 180
MAX_RECV = 32
MAX_TTL_SECONDS = 6 * 3600
MAX_BODY = 256 * 1024
# Row ids are sqlite INTEGERs: anything beyond 64 bits is refused here as a field error.
Id = Annotated[int, Field(ge=0, le=2**63 - 1)]


class _Request(BaseModel):
    # strict: "5" is not 5; forbid: a misspelt field is an error, not silently ignored.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Send(_Request):
    """Store a message for `to` (agent name, manager, operator or * for broadcast)."""

    cmd: Literal["send"] = "send"
    to: str = Field(min_length=1, max_length=64)
    body: str = Field(min_length=1, max_length=MAX_BODY)
    in_reply_to: Id | None = None


class Recv(_Request):
    """Pop up to `max` undelivered messages, parking up to `wait_seconds` for one."""

    cmd: Literal["recv"] = "recv"
    wait_seconds: float = Field(0, ge=0, le=MAX_WAIT_SECONDS)
    max: int = Field(1, ge=1, le=MAX_RECV)


class Ack(_Request):
    """Mark delivered messages as handled."""

    cmd: Literal["ack"] = "ack"
    ids: list[Id] = Field(min_length=1, max_length=1024)


class ReadInbox(_Request):
    """Mark the operator's inbox read up to message `up_to` (all of it when absent)."""

    cmd: Literal["read_inbox"] = "read_inbox"
    up_to: Id | None = None


class Status(_Request):
    """Count undelivered messages."""

    cmd: Literal["status"] = "status"


class Recent(_Request):
    """Peek at the latest messages to and from the caller without consuming them."""

    cmd: Literal["recent"] = "recent"
    limit: int = Field(50, ge=1, le=500)


class AskOperator(_Request):
    """Queue a question for the operator; the answer comes back as an event."""

    cmd: Literal["ask_operator"] = "ask_operator"
    question: str = Field(min_length=1, max_length=8192)
    options: list[Annotated[str, Field(min_length=1, max_length=512)]] = Field(
        default_factory=list, max_length=32
    )
    multi: bool = False
    ttl_seconds: int | None = Field(None, ge=1, le=MAX_TTL_SECONDS)


class Whoami(_Request):
    """Say which identity this socket carries."""

    cmd: Literal["whoami"] = "whoami"


class _Named(_Request):
    name: str = Field(max_length=64)


class RequestSpawn(_Named):
    """Ask the operator to approve a new agent."""

    cmd: Literal["request_spawn"] = "request_spawn"
    description: str = Field("", max_length=8192)


class Kill(_Named):
    """Stop an agent's container."""

    cmd: Literal["kill"] = "kill"


class Start(_Named):
    """Start a stopped agent's container."""

    cmd: Literal["start"] = "start"


class Restart(_Named):
    """Stop and start an agent's container."""

    cmd: Literal["restart"] = "restart"


class Update(_Named):
    """Rebuild an agent from its applied config (manager's name for rebuild)."""

    cmd: Literal["update"] = "update"


class Rebuild(_Named):
    """Idempotent reconcile of an agent's container."""

    cmd: Literal["rebuild"] = "rebuild"


class RequestApplyCommit(_Request):
    """Ask the operator to deploy a commit of an agent's proposed config."""

    cmd: Literal["request_apply_commit"] = "request_apply_commit"
    agent: str = Field(max_length=64)
    commit_ref: str = Field(max_length=64)
    description: str = Field("", max_length=8192)


class Spawn(_Named):
    """Create and start an agent without an approval (operator only)."""

    cmd: Literal["spawn"] = "spawn"


class Revive(_Named):
    """Bring back a destroyed agent with its kept state and credentials (operator only)."""

    cmd: Literal["revive"] = "revive"


class Destroy(_Named):
    """Remove an agent's container; with purge also its state (operator only for purge)."""

    cmd: Literal["destroy"] = "destroy"
    purge: bool = False


class ListAgents(_Request):
    """List known agents."""

    cmd: Literal["list"] = "list"


class Pending(_Request):
    """List pending approvals."""

    cmd: Literal["pending"] = "pending"


class Approve(_Request):
    """Approve a pending approval."""

    cmd: Literal["approve"] = "approve"
    id: Id


class Diff(_Request):
    """The diff an apply_commit approval would deploy (deployed main -> its commit)."""

    cmd: Literal["diff"] = "diff"
    id: Id


class Deny(_Request):
    """Deny a pending approval with an optional note."""

    cmd: Literal["deny"] = "deny"
    id: Id
    note: str | None = Field(None, max_length=8192)


class Questions(_Request):
    """List open operator questions."""

    cmd: Literal["questions"] = "questions"


class Answer(_Request):
    """Answer an operator question."""

    cmd: Literal["answer"] = "answer"
    id: Id
    answer: str = Field(min_length=1, max_length=8192)


class CancelQuestion(_Request):
    """Resolve an operator question as [cancelled]."""

    cmd: Literal["cancel_question"] = "cancel_question"
    id: Id


class Login(_Request):
    """The URL that logs a browser in to the dashboard (operator only; it holds a key)."""

    cmd: Literal["login"] = "login"


class RotateToken(_Request):
    """Replace the operator secret: every browser session (dashboard and pages) ends."""

    cmd: Literal["rotate_token"] = "rotate_token"


Request = Annotated[
    Send
    | Recv
    | Ack
    | ReadInbox
    | Status
    | Recent
    | AskOperator
    | Whoami
    | RequestSpawn
    | Kill
    | Start
    | Restart
    | Update
    | Rebuild
    | RequestApplyCommit
    | Spawn
    | Revive
    | Destroy
    | ListAgents
    | Pending
    | Approve
    | Diff
    | Deny
    | Questions
    | Answer
    | CancelQuestion
    | Login
    | RotateToken,
    Field(discriminator="cmd"),
]
REQUEST: TypeAdapter[Request] = TypeAdapter(Request)

# Which commands each kind of socket answers (SPEC §4). Operator authority (approve, deny,
# answer, cancel_question, spawn, destroy) exists only on the host socket.
AGENT_COMMANDS = frozenset({"send", "recv", "ack", "status", "recent", "ask_operator", "whoami"})
MANAGER_COMMANDS = AGENT_COMMANDS | {
    "request_spawn",
    "kill",
    "start",
    "restart",
    "update",
    "request_apply_commit",
}
HOST_COMMANDS = frozenset(
    {
        "send",
        "ack",  # marks operator-bound messages read (the operator's inbox is never popped)
        "read_inbox",
        "recent",
        "spawn",
        "revive",
        "request_spawn",
        "request_apply_commit",
        "kill",
        "start",
        "restart",
        "rebuild",
        "update",
        "destroy",
        "list",
        "pending",
        "approve",
        "diff",
        "deny",
        "questions",
        "answer",
        "cancel_question",
        "whoami",
        "login",
        "rotate_token",
    }
)

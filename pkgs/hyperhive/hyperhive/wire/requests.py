"""Every request a socket accepts, as one discriminated union on `cmd`, and which kinds of
socket answer each (SPEC §4): a command is added by one class here, the per-socket command
sets are derived from the classes."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from hyperhive.wire.roles import SocketKind

MAX_WAIT_SECONDS = 180
MAX_RECV = 32
MAX_TTL_SECONDS = 6 * 3600
MAX_BODY = 256 * 1024
# Row ids are sqlite INTEGERs: anything beyond 64 bits is refused here as a field error.
Id = Annotated[int, Field(ge=0, le=2**63 - 1)]


EVERY_SOCKET = frozenset(SocketKind)
AGENT_SOCKETS = frozenset({SocketKind.AGENT, SocketKind.MANAGER})
MANAGER_AND_HOST = frozenset({SocketKind.MANAGER, SocketKind.HOST})
# Operator authority (approve, deny, answer, spawn, destroy, ...) exists only on host.sock.
HOST_ONLY = frozenset({SocketKind.HOST})


class _Request(BaseModel):
    # strict: "5" is not 5; forbid: a misspelt field is an error, not silently ignored.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    answered_on: ClassVar[frozenset[SocketKind]]
    """The kinds of socket that answer this command; every other kind refuses it."""


class Send(_Request):
    """Store a message for `to` (agent name, manager, operator or * for broadcast)."""

    cmd: Literal["send"] = "send"
    answered_on = EVERY_SOCKET
    to: str = Field(min_length=1, max_length=64)
    body: str = Field(min_length=1, max_length=MAX_BODY)
    in_reply_to: Id | None = None


class Recv(_Request):
    """Pop up to `max` undelivered messages, parking up to `wait_seconds` for one."""

    cmd: Literal["recv"] = "recv"
    answered_on = AGENT_SOCKETS
    wait_seconds: float = Field(0, ge=0, le=MAX_WAIT_SECONDS)
    max: int = Field(1, ge=1, le=MAX_RECV)


class Ack(_Request):
    """Mark delivered messages as handled."""

    cmd: Literal["ack"] = "ack"
    answered_on = EVERY_SOCKET
    ids: list[Id] = Field(min_length=1, max_length=1024)


class ReadInbox(_Request):
    """Mark the operator's inbox read up to message `up_to` (all of it when absent)."""

    cmd: Literal["read_inbox"] = "read_inbox"
    answered_on = HOST_ONLY
    up_to: Id | None = None


class Status(_Request):
    """Count undelivered messages."""

    cmd: Literal["status"] = "status"
    answered_on = AGENT_SOCKETS


class Recent(_Request):
    """Peek at the latest messages to and from the caller without consuming them."""

    cmd: Literal["recent"] = "recent"
    answered_on = EVERY_SOCKET
    limit: int = Field(50, ge=1, le=500)


class AskOperator(_Request):
    """Queue a question for the operator; the answer comes back as an event."""

    cmd: Literal["ask_operator"] = "ask_operator"
    answered_on = AGENT_SOCKETS
    question: str = Field(min_length=1, max_length=8192)
    options: list[Annotated[str, Field(min_length=1, max_length=512)]] = Field(
        default_factory=list, max_length=32
    )
    multi: bool = False
    ttl_seconds: int | None = Field(None, ge=1, le=MAX_TTL_SECONDS)


class Whoami(_Request):
    """Say which identity this socket carries."""

    cmd: Literal["whoami"] = "whoami"
    answered_on = EVERY_SOCKET


class _Named(_Request):
    name: str = Field(max_length=64)


class RequestSpawn(_Named):
    """Ask the operator to approve a new agent."""

    cmd: Literal["request_spawn"] = "request_spawn"
    answered_on = MANAGER_AND_HOST
    description: str = Field("", max_length=8192)


class Kill(_Named):
    """Stop an agent's container."""

    cmd: Literal["kill"] = "kill"
    answered_on = MANAGER_AND_HOST


class Start(_Named):
    """Start a stopped agent's container."""

    cmd: Literal["start"] = "start"
    answered_on = MANAGER_AND_HOST


class Restart(_Named):
    """Stop and start an agent's container."""

    cmd: Literal["restart"] = "restart"
    answered_on = MANAGER_AND_HOST


class Update(_Named):
    """Rebuild an agent from its applied config (manager's name for rebuild)."""

    cmd: Literal["update"] = "update"
    answered_on = MANAGER_AND_HOST


class Rebuild(_Named):
    """Idempotent reconcile of an agent's container."""

    cmd: Literal["rebuild"] = "rebuild"
    answered_on = HOST_ONLY


class RequestApplyCommit(_Request):
    """Ask the operator to deploy a commit of an agent's proposed config."""

    cmd: Literal["request_apply_commit"] = "request_apply_commit"
    answered_on = MANAGER_AND_HOST
    agent: str = Field(max_length=64)
    commit_ref: str = Field(max_length=64)
    description: str = Field("", max_length=8192)


class Spawn(_Named):
    """Create and start an agent without an approval (operator only)."""

    cmd: Literal["spawn"] = "spawn"
    answered_on = HOST_ONLY


class Revive(_Named):
    """Bring back a destroyed agent with its kept state and credentials (operator only)."""

    cmd: Literal["revive"] = "revive"
    answered_on = HOST_ONLY


class Destroy(_Named):
    """Remove an agent's container; with purge also its state (operator only for purge)."""

    cmd: Literal["destroy"] = "destroy"
    answered_on = HOST_ONLY
    purge: bool = False


class ListAgents(_Request):
    """List known agents."""

    cmd: Literal["list"] = "list"
    answered_on = HOST_ONLY


class Pending(_Request):
    """List pending approvals."""

    cmd: Literal["pending"] = "pending"
    answered_on = HOST_ONLY


class Approve(_Request):
    """Approve a pending approval."""

    cmd: Literal["approve"] = "approve"
    answered_on = HOST_ONLY
    id: Id


class Diff(_Request):
    """The diff an apply_commit approval would deploy (deployed main -> its commit)."""

    cmd: Literal["diff"] = "diff"
    answered_on = HOST_ONLY
    id: Id


class Deny(_Request):
    """Deny a pending approval with an optional note."""

    cmd: Literal["deny"] = "deny"
    answered_on = HOST_ONLY
    id: Id
    note: str | None = Field(None, max_length=8192)


class Questions(_Request):
    """List open operator questions."""

    cmd: Literal["questions"] = "questions"
    answered_on = HOST_ONLY


class Answer(_Request):
    """Answer an operator question."""

    cmd: Literal["answer"] = "answer"
    answered_on = HOST_ONLY
    id: Id
    answer: str = Field(min_length=1, max_length=8192)


class CancelQuestion(_Request):
    """Resolve an operator question as [cancelled]."""

    cmd: Literal["cancel_question"] = "cancel_question"
    answered_on = HOST_ONLY
    id: Id


class Login(_Request):
    """The URL that logs a browser in to the dashboard (operator only; it holds a key)."""

    cmd: Literal["login"] = "login"
    answered_on = HOST_ONLY


class RotateToken(_Request):
    """Replace the operator secret: every browser session (dashboard and pages) ends."""

    cmd: Literal["rotate_token"] = "rotate_token"
    answered_on = HOST_ONLY


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

MODELS: tuple[type[_Request], ...] = get_args(get_args(Request)[0])
"""Every request class, in the union's order."""


def cmd_of(model: type[_Request]) -> str:
    """The `cmd` tag of a request class."""
    tag = model.model_fields["cmd"].default
    assert isinstance(tag, str)
    return tag


COMMANDS: dict[SocketKind, frozenset[str]] = {
    kind: frozenset(cmd_of(m) for m in MODELS if kind in m.answered_on) for kind in SocketKind
}
"""Which commands each kind of socket answers, from the classes' `answered_on`."""

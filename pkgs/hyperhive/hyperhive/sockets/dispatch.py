"""Thin handlers: parsed request -> service call -> reply. No logic lives here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hyperhive.agents.names import OPERATOR, agent_port
from hyperhive.agents.registry import Registry
from hyperhive.approvals.service import Approvals
from hyperhive.broker.service import Broker
from hyperhive.errors import InvalidRequest
from hyperhive.lifecycle.service import Lifecycle
from hyperhive.questions.service import QuestionService
from hyperhive.sockets.server import Connection
from hyperhive.wire import requests as rq
from hyperhive.wire.responses import (
    AgentInfo,
    AgentsReply,
    ApprovalsReply,
    Empty,
    LoginReply,
    Messages,
    Ok,
    QuestionQueued,
    QuestionsReply,
    RecentReply,
    Reply,
    StatusReply,
    WhoamiReply,
)
from hyperhive.wire.roles import SocketKind


class OperatorAccess(Protocol):
    """The daemon's browser credentials, as the host socket reaches them."""

    def login_url(self) -> str:
        """The dashboard URL with the dashboard key in its fragment."""
        ...

    async def rotate_secret(self) -> None:
        """Replace the operator secret and end every browser session."""
        ...


@dataclass
class Dispatcher:
    """Routes every request to its service, as the socket's identity."""

    registry: Registry
    broker: Broker
    questions: QuestionService
    lifecycle: Lifecycle
    approvals: Approvals
    operator: OperatorAccess | None = None

    async def handle(self, conn: Connection, request: rq.Request) -> Reply:
        """Answer one request. The socket layer already checked the cmd is allowed."""
        me = conn.identity.name
        caller = me if conn.identity.kind is SocketKind.MANAGER else None
        match request:
            case rq.Send(to=to, body=body, in_reply_to=in_reply_to):
                ids = await self.broker.send(me, to, body, in_reply_to)
                if conn.identity.kind is SocketKind.HOST and (
                    hint := self.lifecycle.login_hint(to)
                ):
                    return Ok(ids=ids, message=f"sent (message id {ids[0]}), but {hint}")
                return Ok(ids=ids)
            case rq.Recv(wait_seconds=wait, max=limit):
                items = await self.broker.recv(me, wait, limit)
                if not items:
                    return Empty()
                conn.unacked.update(item.id for item in items)
                return Messages(items=items)
            case rq.Ack(ids=ids) if conn.identity.kind is SocketKind.HOST:
                # The operator's inbox is never popped: acking it is marking it read.
                count = await self.broker.ack_operator(ids)
                return Ok(message=f"marked {count} operator message(s) read")
            case rq.ReadInbox(up_to=up_to):
                count = await self.broker.read_inbox(up_to)
                return Ok(message=f"marked {count} operator message(s) read")
            case rq.Ack(ids=ids):
                count = await self.broker.ack(me, ids)
                conn.unacked.difference_update(ids)
                return Ok(message=f"acked {count}")
            case rq.Status():
                return StatusReply(unread=self.broker.unread(me))
            case rq.Recent(limit=limit):
                return RecentReply(rows=self.broker.recent(me, limit))
            case rq.AskOperator(question=q, options=options, multi=multi, ttl_seconds=ttl):
                qid = await self.questions.ask(me, q, list(options), multi, ttl)
                return QuestionQueued(id=qid)
            case rq.Whoami():
                port = None if me == OPERATOR else agent_port(me)
                return WhoamiReply(name=me, role=conn.identity.kind.value, port=port)
            case rq.RequestSpawn(name=name, description=description):
                approval_id = await self.approvals.request_spawn(name, description)
                return Ok(id=approval_id, message=f"spawn of {name} awaits the operator")
            case rq.Spawn(name=name):
                record = await self.lifecycle.spawn(name)
                return Ok(message=f"spawned {record.name}")
            case rq.Revive(name=name):
                record = await self.lifecycle.revive(name)
                return Ok(message=f"revived {record.name} with its kept state")
            case rq.Kill(name=name):
                await self.lifecycle.kill(name, caller=caller)
                return Ok(message=f"stopped {name}")
            case rq.Start(name=name):
                await self.lifecycle.start(name, caller=caller)
                return Ok(message=f"started {name}")
            case rq.Restart(name=name):
                await self.lifecycle.restart(name, caller=caller)
                return Ok(message=f"restarted {name}")
            case rq.Rebuild(name=name) | rq.Update(name=name):
                await self.lifecycle.rebuild(name, caller=caller)
                return Ok(message=f"rebuilt {name}")
            case rq.Destroy(name=name, purge=purge):
                await self.lifecycle.destroy(name, purge=purge)
                return Ok(message=f"destroyed {name}" + (" and purged its state" if purge else ""))
            case rq.ListAgents():
                return AgentsReply(
                    items=[
                        AgentInfo(
                            name=a.name,
                            role=a.role.value,
                            state=a.state.value,
                            port=agent_port(a.name),
                            created_at=a.created_at,
                            destroyed_at=a.destroyed_at,
                            needs_login=a.live
                            and self.registry.is_local(a)
                            and not self.lifecycle.logged_in(a.name),
                            host=a.host,
                        )
                        for a in self.registry.all()
                    ]
                )
            case rq.Pending():
                await self.approvals.reap_orphans()
                return ApprovalsReply(items=self.approvals.list_pending())
            case rq.Approve(id=approval_id):
                info = await self.approvals.approve(approval_id)
                what = "spawning" if info.kind_ == "spawn" else "deploying"
                return Ok(
                    id=info.id,
                    message=f"approval #{info.id} {info.status}: {what} {info.agent}"
                    " in the background",
                )
            case rq.Diff(id=approval_id):
                diff = await self.approvals.diff(approval_id)
                return Ok(id=approval_id, message=diff or "(no difference to what is deployed)")
            case rq.Deny(id=approval_id, note=note):
                info = await self.approvals.deny(approval_id, note)
                return Ok(id=info.id, message=f"approval #{info.id} denied")
            case rq.Questions():
                return QuestionsReply(items=self.questions.list_open())
            case rq.Answer(id=question_id, answer=answer):
                done = await self.questions.answer(question_id, answer)
                return Ok(id=question_id, message="answered" if done else "already resolved")
            case rq.CancelQuestion(id=question_id):
                done = await self.questions.cancel(question_id)
                return Ok(id=question_id, message="cancelled" if done else "already resolved")
            case rq.Login():
                return LoginReply(url=self._operator().login_url())
            case rq.RotateToken():
                await self._operator().rotate_secret()
                return Ok(
                    message="operator secret rotated: every browser session ended;"
                    " run `hive-c0re login` for a new login URL"
                )
            case rq.RequestApplyCommit(agent=agent, commit_ref=ref, description=description):
                approval_id = await self.approvals.request_apply_commit(agent, ref, description)
                return Ok(
                    id=approval_id,
                    message=f"commit {ref} of {agent} awaits the operator"
                    f" (approval #{approval_id})",
                )
        raise InvalidRequest(f"unhandled cmd {request.cmd!r}")

    def _operator(self) -> OperatorAccess:
        if self.operator is None:
            raise InvalidRequest("this daemon has no browser credentials (no dashboard)")
        return self.operator

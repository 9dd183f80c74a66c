"""The ``hyperhive`` MCP stdio server: each tool call is one request on the agent's socket.

stdout belongs to the MCP protocol; logs go to stderr. Errors are raised as ToolError with
the daemon's own message, which claude shows the model as a readable tool error.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from pydantic import BaseModel, ValidationError

from hyperhive.errors import HyperhiveError
from hyperhive.mcp_server.roles import MCP_SERVER_NAME
from hyperhive.wire import requests as rq
from hyperhive.wire import responses as rs
from hyperhive.wire.client import SocketClient
from hyperhive.wire.roles import Role

logger = logging.getLogger(__name__)


class AgentSocket:
    """The agent's socket as the tools use it: one connection per call, so the MCP server
    holds no broker state of its own."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket

    async def call(self, request: BaseModel) -> rs.Response:
        """Send one request; turn every failure into a ToolError the model can read."""
        try:
            client = await SocketClient.connect(self.socket)
        except HyperhiveError as exc:
            raise ToolError(exc.message) from exc
        try:
            return await client.call(request)
        except HyperhiveError as exc:
            raise ToolError(exc.message) from exc
        finally:
            await client.close()

    async def recv_and_ack(self, wait_seconds: float, max_items: int) -> rs.Response:
        """recv, then ack on the same connection: claude has seen the messages."""
        try:
            client = await SocketClient.connect(self.socket)
        except HyperhiveError as exc:
            raise ToolError(exc.message) from exc
        try:
            reply = await client.call(rq.Recv(wait_seconds=wait_seconds, max=max_items))
            if isinstance(reply, rs.Messages) and reply.items:
                await client.call(rq.Ack(ids=[m.id for m in reply.items]))
            return reply
        except HyperhiveError as exc:
            raise ToolError(exc.message) from exc
        finally:
            await client.close()


def _request(model: type[BaseModel], **fields: object) -> BaseModel:
    """Build a wire request, reporting a bad argument the way the model can fix it."""
    try:
        return model(**fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'argument'}: {e['msg']}" for e in exc.errors()
        )
        raise ToolError(f"invalid arguments — {problems}") from exc


def _ok(reply: rs.Response, what: str) -> str:
    if not isinstance(reply, rs.Ok):
        return reply.model_dump_json(by_alias=True)
    if reply.message:
        return reply.message
    if reply.ids:
        return f"{what} (message id {', '.join(map(str, reply.ids))})"
    return what if reply.id is None else f"{what} (id {reply.id})"


def _messages(reply: rs.Response) -> str:
    if isinstance(reply, rs.Messages):
        return json.dumps([m.model_dump(by_alias=True) for m in reply.items])
    return "no messages"


def build_server(role: Role, socket: Path) -> FastMCP:
    """The MCP server with the tools of ``role`` (SPEC §6)."""
    server = FastMCP(MCP_SERVER_NAME, log_level="WARNING")
    daemon = AgentSocket(socket)

    @server.tool()
    async def send(to: str, body: str, in_reply_to: int | None = None) -> str:
        """Send a message to an agent by name, `manager`, `operator`, or `*` (everyone)."""
        reply = await daemon.call(_request(rq.Send, to=to, body=body, in_reply_to=in_reply_to))
        return _ok(reply, f"sent to {to}")

    @server.tool()
    async def recv(wait_seconds: float = 0, max: int = 8) -> str:  # "max" is the wire name
        """Read your next messages (JSON list). wait_seconds up to 180 parks until one arrives:
        use recv(wait_seconds=180) instead of sleeping."""
        _request(rq.Recv, wait_seconds=wait_seconds, max=max)  # validate before connecting
        return _messages(await daemon.recv_and_ack(wait_seconds, max))

    @server.tool()
    async def ask_operator(
        question: str,
        options: list[str] | None = None,
        multi: bool = False,
        ttl_seconds: int | None = None,
    ) -> str:
        """Ask the operator a question. Returns the question id at once; the answer arrives
        later as an `operator_answered` system event. Options are suggestions (free text is
        always allowed); multi answers are joined with ", "; ttl_seconds (at most 6 h)
        resolves the question to [expired]."""
        request = _request(
            rq.AskOperator,
            question=question,
            options=options or [],
            multi=multi,
            ttl_seconds=ttl_seconds,
        )
        reply = await daemon.call(request)
        if isinstance(reply, rs.QuestionQueued):
            return f"question {reply.id} queued; the answer arrives as an operator_answered event"
        return reply.model_dump_json(by_alias=True)

    @server.tool()
    async def whoami() -> str:
        """Your name and role in the swarm."""
        return (await daemon.call(rq.Whoami())).model_dump_json(by_alias=True)

    if role is Role.MANAGER:
        _add_manager_tools(server, daemon)
    return server


def _add_manager_tools(server: FastMCP, daemon: AgentSocket) -> None:
    @server.tool()
    async def request_spawn(name: str, description: str = "") -> str:
        """Ask the operator to approve a new agent `name`.

        Names: 1-9 characters, a lowercase letter first, then lowercase letters or digits,
        a single '-' only between two of them (not at the end).
        """
        reply = await daemon.call(_request(rq.RequestSpawn, name=name, description=description))
        return _ok(reply, f"spawn of {name} requested; the operator decides")

    @server.tool()
    async def kill(name: str) -> str:
        """Stop agent `name`'s container."""
        return _ok(await daemon.call(_request(rq.Kill, name=name)), f"{name} stopped")

    @server.tool()
    async def start(name: str) -> str:
        """Start agent `name`'s stopped container."""
        return _ok(await daemon.call(_request(rq.Start, name=name)), f"{name} started")

    @server.tool()
    async def restart(name: str) -> str:
        """Restart agent `name`'s container."""
        return _ok(await daemon.call(_request(rq.Restart, name=name)), f"{name} restarted")

    @server.tool()
    async def update(name: str) -> str:
        """Rebuild agent `name` from its applied config."""
        return _ok(await daemon.call(_request(rq.Update, name=name)), f"{name} updated")

    @server.tool()
    async def request_apply_commit(agent: str, commit_ref: str, description: str = "") -> str:
        """Ask the operator to deploy commit `commit_ref` of `agent`'s proposed config repo."""
        request = _request(
            rq.RequestApplyCommit, agent=agent, commit_ref=commit_ref, description=description
        )
        return _ok(await daemon.call(request), f"apply of {agent}@{commit_ref} requested")


def run_stdio(role: Role, socket: Path) -> None:
    """Serve MCP on stdin/stdout until claude closes the pipe."""
    logger.info("hyperhive MCP server for role %s on socket %s", role, socket)
    build_server(role, socket).run("stdio")

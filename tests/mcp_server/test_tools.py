"""The MCP server's tools against a real in-process daemon, through an in-memory MCP session."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from harness.support import spawn_quiet
from hivetest import call, running_hive
from hyperhive.daemon import Hive
from hyperhive.mcp_server.roles import AGENT_TOOLS, MANAGER_TOOLS
from hyperhive.mcp_server.tools import build_server
from hyperhive.wire.roles import Role
from mcp.client.session import ClientSession
from mcp.shared.memory import create_connected_server_and_client_session
from mcp.types import TextContent


@asynccontextmanager
async def session(socket: Path, role: Role = Role.AGENT) -> AsyncIterator[ClientSession]:
    async with create_connected_server_and_client_session(build_server(role, socket)) as s:
        yield s


def text(result: object) -> str:
    content = result.content  # type: ignore[attr-defined]
    assert isinstance(content[0], TextContent)
    return content[0].text


@asynccontextmanager
async def hive_with(tmp_path: Path, *names: str) -> AsyncIterator[Hive]:
    async with running_hive(tmp_path) as hive:
        for name in names:
            await spawn_quiet(hive.settings.host_socket, agent_socket(hive, name), name)
        yield hive


def agent_socket(hive: Hive, name: str) -> Path:
    if name == "manager":
        return hive.settings.run_dir / "manager" / "mcp.sock"
    return hive.settings.run_dir / "agents" / name / "mcp.sock"


async def test_tool_lists_per_role(tmp_path: Path) -> None:
    async with hive_with(tmp_path, "alice") as hive:
        async with session(agent_socket(hive, "alice")) as s:
            agent = {t.name for t in (await s.list_tools()).tools}
        async with session(agent_socket(hive, "manager"), Role.MANAGER) as s:
            manager = {t.name for t in (await s.list_tools()).tools}
    assert agent == set(AGENT_TOOLS)
    assert manager == set(MANAGER_TOOLS)


async def test_send_stores_a_message_from_the_socket_owner(tmp_path: Path) -> None:
    async with hive_with(tmp_path, "alice", "bob") as hive:
        async with session(agent_socket(hive, "alice")) as s:
            result = await s.call_tool("send", {"to": "bob", "body": "hello bob"})
        assert not result.isError, text(result)
        assert "message id" in text(result)
        recent = await call(agent_socket(hive, "bob"), "recent", limit=10)
    rows = [r for r in recent["rows"] if r["body"] == "hello bob"]
    assert [(r["from"], r["to"]) for r in rows] == [("alice", "bob")]


async def test_unknown_recipient_is_a_readable_tool_error(tmp_path: Path) -> None:
    async with hive_with(tmp_path, "alice") as hive, session(agent_socket(hive, "alice")) as s:
        result = await s.call_tool("send", {"to": "nobody", "body": "x"})
    assert result.isError
    assert "nobody" in text(result)


async def test_bad_argument_names_the_field(tmp_path: Path) -> None:
    async with hive_with(tmp_path, "alice") as hive, session(agent_socket(hive, "alice")) as s:
        result = await s.call_tool("recv", {"wait_seconds": 999})
    assert result.isError
    assert "wait_seconds" in text(result)


async def test_recv_returns_messages_and_acks_them(tmp_path: Path) -> None:
    async with hive_with(tmp_path, "alice") as hive:
        host = hive.settings.host_socket
        await call(host, "send", to="alice", body="first")
        await call(host, "send", to="alice", body="second")
        async with session(agent_socket(hive, "alice")) as s:
            result = await s.call_tool("recv", {"max": 8})
            items = json.loads(text(result))
            again = await s.call_tool("recv", {})
        recent = await call(host, "recent", limit=10)
    assert [m["body"] for m in items] == ["first", "second"]
    assert items[0]["from"] == "operator"
    assert text(again) == "no messages"
    acked = {r["body"]: r["acked"] for r in recent["rows"] if r["to"] == "alice"}
    assert acked == {"first": True, "second": True}


async def test_whoami_and_ask_operator(tmp_path: Path) -> None:
    async with hive_with(tmp_path, "alice") as hive:
        async with session(agent_socket(hive, "alice")) as s:
            who = json.loads(text(await s.call_tool("whoami", {})))
            asked = await s.call_tool("ask_operator", {"question": "ship it?", "options": ["y"]})
        questions = await call(hive.settings.host_socket, "questions")
    assert who["name"] == "alice"
    assert not asked.isError, text(asked)
    assert [q["question"] for q in questions["items"]] == ["ship it?"]
    assert f"question {questions['items'][0]['id']} queued" in text(asked)


async def test_daemon_down_is_a_readable_tool_error(tmp_path: Path) -> None:
    async with session(tmp_path / "missing.sock") as s:
        result = await s.call_tool("whoami", {})
    assert result.isError
    assert "hive-c0re running" in text(result)


async def test_manager_request_spawn_queues_an_approval(tmp_path: Path) -> None:
    async with hive_with(tmp_path) as hive:
        async with session(agent_socket(hive, "manager"), Role.MANAGER) as s:
            result = await s.call_tool("request_spawn", {"name": "dave", "description": "x"})
            refused = await s.call_tool("kill", {"name": "manager"})
        pending = await call(hive.settings.host_socket, "pending")
    assert not result.isError, text(result)
    assert [a["agent"] for a in pending["items"]] == ["dave"]
    assert refused.isError

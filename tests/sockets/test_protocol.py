"""JSON-lines error behaviour and per-socket authority (SPEC §4, §16)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest
from hivetest import Client, call, drain, running_hive

MALFORMED = [
    (b"this is not json\n", "not valid JSON"),
    (b'{"cmd": "fly"}\n', "unknown cmd 'fly'"),
    (b'{"to": "bob"}\n', "no 'cmd' field"),
    (b"[1, 2]\n", "JSON object"),
    (b'{"cmd": "send", "body": "x"}\n', "missing field 'to'"),
    (b'{"cmd": "recv", "wait_seconds": "10"}\n', "field 'wait_seconds'"),
    (b'{"cmd": "recv", "max": 33}\n', "field 'max'"),
    (b'{"cmd": "recv", "wait_seconds": 181}\n', "field 'wait_seconds'"),
    (b'{"cmd": "ack", "ids": ["1"]}\n', "field 'ids.0'"),
    (b'{"cmd": "send", "to": "bob", "body": "x", "sender": "operator"}\n', "no field 'sender'"),
    (b'{"cmd": "whoami"}\xff\n', "not valid UTF-8"),
    (b"\n", "empty request line"),
    (b"x" * (2 * 1024 * 1024) + b"\n", "exceeds 1048576 bytes"),
]


@pytest.mark.parametrize(("line", "expected"), MALFORMED, ids=[m[1] for m in MALFORMED])
async def test_malformed_line_gets_a_clear_err_and_the_connection_stays_up(
    tmp_path: Path, line: bytes, expected: str
) -> None:
    async with running_hive(tmp_path) as hive:
        await call(hive.settings.host_socket, "spawn", name="alice")
        client = await Client.open(hive.lifecycle.paths("alice").socket)
        reply = await client.raw(line)
        assert reply["kind"] == "err"
        assert expected in reply["message"]
        # same connection still answers, and so does the daemon for others
        assert (await client.call("whoami"))["name"] == "alice"
        assert (await call(hive.settings.host_socket, "list"))["kind"] == "agents"
        await client.close()


async def test_a_client_sending_garbage_does_not_disturb_a_parked_recv(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        host = hive.settings.host_socket
        await call(host, "spawn", name="alice")
        alice = hive.lifecycle.paths("alice").socket
        await drain(alice)
        parked = asyncio.create_task(call(alice, "recv", wait_seconds=30))
        noisy = await Client.open(alice)
        for line, _ in MALFORMED:
            assert (await noisy.raw(line))["kind"] == "err"
        await noisy.close()
        await call(host, "send", to="alice", body="still here")
        reply = await asyncio.wait_for(parked, 10)
        assert reply["items"][0]["body"] == "still here"


OPERATOR_ONLY = [
    ("approve", {"id": 1}),
    ("deny", {"id": 1}),
    ("answer", {"id": 1, "answer": "yes"}),
    ("cancel_question", {"id": 1}),
    ("spawn", {"name": "evil"}),
    ("destroy", {"name": "alice", "purge": True}),
    ("questions", {}),
    ("pending", {}),
    ("list", {}),
    ("rebuild", {"name": "alice"}),
]


@pytest.mark.parametrize(("cmd", "fields"), OPERATOR_ONLY, ids=[c for c, _ in OPERATOR_ONLY])
async def test_agent_and_manager_sockets_cannot_reach_operator_verbs(
    tmp_path: Path, cmd: str, fields: dict[str, object]
) -> None:
    async with running_hive(tmp_path) as hive:
        host = hive.settings.host_socket
        await call(host, "spawn", name="alice")
        asked = await call(hive.lifecycle.paths("alice").socket, "ask_operator", question="ok?")
        assert asked["id"] == 1
        for who in ("alice", "manager"):
            reply = await call(hive.lifecycle.paths(who).socket, cmd, **fields)
            assert reply["kind"] == "err", (who, reply)
            assert "not available" in reply["message"]
        # nothing changed: the question is open, alice is alive, no evil agent
        assert [q["id"] for q in (await call(host, "questions"))["items"]] == [1]
        agents = {a["name"]: a["state"] for a in (await call(host, "list"))["items"]}
        assert agents == {"alice": "running", "manager": "running"}


async def test_agent_socket_cannot_use_manager_verbs(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        await call(hive.settings.host_socket, "spawn", name="alice")
        await call(hive.settings.host_socket, "spawn", name="bob")
        alice = hive.lifecycle.paths("alice").socket
        for cmd in ("kill", "start", "restart", "update", "request_spawn"):
            reply = await call(alice, cmd, name="bob")
            assert reply["kind"] == "err"
            assert "not available on the agent socket" in reply["message"]


async def test_socket_files_have_the_documented_modes(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        await call(hive.settings.host_socket, "spawn", name="alice")
        mode = stat.S_IMODE(os.stat(hive.settings.host_socket).st_mode)
        assert mode == 0o600
        for who in ("alice", "manager"):
            mode = stat.S_IMODE(os.stat(hive.lifecycle.paths(who).socket).st_mode)
            assert mode == 0o660


async def test_reregistering_an_agent_replaces_its_listener(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        await call(hive.settings.host_socket, "spawn", name="alice")
        old = hive.sockets["alice"]
        await hive.register_socket("alice", hive.registry.get("alice").role)  # type: ignore[arg-type]
        assert hive.sockets["alice"] is not old
        who = await call(hive.lifecycle.paths("alice").socket, "whoami")
        assert who["name"] == "alice"
        assert json.dumps(who)

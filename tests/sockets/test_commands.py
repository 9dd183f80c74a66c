"""One list of commands: each request class says which sockets answer it, and the socket
command sets, the dispatcher and the manager's MCP tools agree with those classes."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

from hivetest import Client, call, running_hive
from hyperhive.mcp_server.roles import AGENT_TOOLS, MANAGER_TOOLS
from hyperhive.sockets import dispatch
from hyperhive.wire import requests as rq
from hyperhive.wire.roles import SocketKind

# A value for each required field, chosen so that the command reaches its handler and is
# refused there (invalid name, unknown id or recipient) or does no harm.
FILLERS: dict[str, object] = {
    "to": "nobody",
    "body": "x",
    "ids": [999_999],
    "question": "still there?",
    "name": "-",
    "agent": "-",
    "commit_ref": "0000000",
    "id": 999_999,
    "answer": "yes",
}
REFUSED_BY_SOCKET = "is not available on the"
NOT_HANDLED = ("unhandled cmd", "internal error")


def every_request_class(base: type[Any]) -> set[type[Any]]:
    found: set[type[Any]] = set()
    for sub in base.__subclasses__():
        if "cmd" in sub.model_fields:
            found.add(sub)
        found |= every_request_class(sub)
    return found


def minimal_fields(model: type[rq.Request]) -> dict[str, object]:
    return {
        name: FILLERS[name]
        for name, info in model.model_fields.items()
        if info.is_required() and name != "cmd"
    }


def test_every_request_class_is_in_the_union_with_its_own_cmd() -> None:
    assert every_request_class(rq._Request) == set(rq.MODELS)
    cmds = [rq.cmd_of(m) for m in rq.MODELS]
    assert len(cmds) == len(set(cmds))
    assert all(m.answered_on for m in rq.MODELS)


def test_the_command_sets_are_the_classes_answered_on() -> None:
    for kind in SocketKind:
        expected = {rq.cmd_of(m) for m in rq.MODELS if kind in m.answered_on}
        assert rq.COMMANDS[kind] == expected
    # Spot checks of the authority split (SPEC §4), so a wholesale mistake shows too.
    assert "approve" in rq.COMMANDS[SocketKind.HOST]
    assert "approve" not in rq.COMMANDS[SocketKind.MANAGER] | rq.COMMANDS[SocketKind.AGENT]
    assert "kill" in rq.COMMANDS[SocketKind.MANAGER] - rq.COMMANDS[SocketKind.AGENT]
    assert "recv" not in rq.COMMANDS[SocketKind.HOST]


def dispatcher_cases() -> list[tuple[set[str], set[str]]]:
    """Each `case` of Dispatcher.handle: the request classes it matches and the socket
    kinds its guard or body names."""
    tree = ast.parse(inspect.getsource(dispatch))
    match = next(n for n in ast.walk(tree) if isinstance(n, ast.Match))
    cases = []
    for case in match.cases:
        classes = {
            node.cls.attr
            for node in ast.walk(case.pattern)
            if isinstance(node, ast.MatchClass) and isinstance(node.cls, ast.Attribute)
        }
        kinds = {
            node.attr
            for part in [case.guard, *case.body]
            if part is not None
            for node in ast.walk(part)
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "SocketKind"
        }
        cases.append((classes, kinds))
    return cases


def test_the_dispatcher_handles_every_command_and_only_for_sockets_that_answer_it() -> None:
    cases = dispatcher_cases()
    assert len(cases) > 20
    handled = set().union(*(classes for classes, _ in cases))
    assert handled == {m.__name__ for m in rq.MODELS}
    for classes, kinds in cases:
        for name in classes:
            answered_on = {k.name for k in getattr(rq, name).answered_on}
            # A branch for a socket that never receives this command is dead code.
            assert kinds <= answered_on, (name, kinds - answered_on)


def test_the_dispatcher_case_walk_sees_guards() -> None:
    guarded = [kinds for classes, kinds in dispatcher_cases() if "Ack" in classes]
    assert {"HOST"} in guarded


def test_the_manager_gets_a_tool_for_each_command_beyond_an_agents() -> None:
    agent, manager = rq.COMMANDS[SocketKind.AGENT], rq.COMMANDS[SocketKind.MANAGER]
    assert set(AGENT_TOOLS) <= agent
    assert set(MANAGER_TOOLS) - set(AGENT_TOOLS) == manager - agent
    assert set(MANAGER_TOOLS) <= manager


async def test_each_socket_answers_exactly_the_commands_its_set_lists(tmp_path: Path) -> None:
    async with running_hive(tmp_path) as hive:
        await call(hive.settings.host_socket, "spawn", name="alice")
        sockets = {
            SocketKind.HOST: hive.settings.host_socket,
            SocketKind.MANAGER: hive.lifecycle.paths("manager").socket,
            SocketKind.AGENT: hive.lifecycle.paths("alice").socket,
        }
        for kind, path in sockets.items():
            client = await Client.open(path)
            try:
                for model in rq.MODELS:
                    cmd = rq.cmd_of(model)
                    reply = await client.call(cmd, **minimal_fields(model))
                    message = str(reply.get("message", ""))
                    if cmd in rq.COMMANDS[kind]:
                        assert REFUSED_BY_SOCKET not in message, (kind, cmd, reply)
                        assert not any(s in message for s in NOT_HANDLED), (kind, cmd, reply)
                    else:
                        assert reply["kind"] == "err", (kind, cmd, reply)
                        assert f"{REFUSED_BY_SOCKET} {kind} socket" in message, (kind, cmd)
            finally:
                await client.close()

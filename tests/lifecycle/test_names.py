"""Names are validated at every edge before touching the disk (SPEC §3, §16)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hivetest import call, running_hive
from hyperhive.errors import InvalidName
from hyperhive.lifecycle.names import agent_port, fnv1a32, validate_name

BAD = ["..", "../x", "a/b", "abcdefghij", "Alice", "", "1abc", "-a", "a b", "manager", "system"]


@pytest.mark.parametrize("name", BAD)
def test_validate_name_refuses(name: str) -> None:
    with pytest.raises(InvalidName):
        validate_name(name)


@pytest.mark.parametrize("name", ["a", "alice", "ab-12", "abcdefghi"])
def test_validate_name_accepts(name: str) -> None:
    assert validate_name(name) == name


def test_fnv1a32_known_vectors() -> None:
    # Published FNV-1a 32-bit test vectors.
    assert fnv1a32(b"") == 0x811C9DC5
    assert fnv1a32(b"a") == 0xE40C292C
    assert fnv1a32(b"foobar") == 0xBF9CF968


def test_ports_follow_from_names() -> None:
    assert agent_port("manager") == 8000
    assert agent_port("alice") == 8100 + fnv1a32(b"alice") % 900
    assert all(8100 <= agent_port(n) < 9000 for n in ("a", "b", "zzzzzzzzz"))


@pytest.mark.parametrize("name", ["..", "../x", "a/b", "abcdefghij", "UPPER", ""])
async def test_bad_names_refused_on_every_socket_before_touching_disk(
    tmp_path: Path, name: str
) -> None:
    async with running_hive(tmp_path) as hive:
        host = hive.settings.host_socket
        manager = hive.lifecycle.paths("manager").socket
        before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
        attempts = [
            (host, "spawn", {"name": name}),
            (host, "request_spawn", {"name": name}),
            (host, "destroy", {"name": name, "purge": True}),
            (host, "kill", {"name": name}),
            (host, "rebuild", {"name": name}),
            (manager, "request_spawn", {"name": name}),
            (manager, "kill", {"name": name}),
            (manager, "restart", {"name": name}),
        ]
        for sock, cmd, fields in attempts:
            reply = await call(sock, cmd, **fields)
            assert reply["kind"] == "err", (cmd, reply)
            assert "agent name" in reply["message"] or "at most 64" in reply["message"]
        after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
        assert after == before
        assert {a["name"] for a in (await call(host, "list"))["items"]} == {"manager"}
        assert (await call(host, "pending"))["items"] == []


async def test_port_collision_is_refused_naming_both_agents(tmp_path: Path) -> None:
    # find two valid names with the same port
    seen: dict[int, str] = {}
    pair = None
    for i in range(5000):
        name = f"a{i}"
        port = agent_port(name)
        if port in seen:
            pair = (seen[port], name)
            break
        seen[port] = name
    assert pair is not None
    async with running_hive(tmp_path) as hive:
        assert (await call(hive.settings.host_socket, "spawn", name=pair[0]))["kind"] == "ok"
        reply = await call(hive.settings.host_socket, "spawn", name=pair[1])
        assert reply["kind"] == "err"
        assert pair[0] in reply["message"]
        assert pair[1] in reply["message"]
        assert "rename" in reply["message"]

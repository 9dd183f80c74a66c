"""Names are validated at every edge before touching the disk (SPEC §3, §16)."""

from __future__ import annotations

import random
import re
import string
import subprocess
from pathlib import Path

import pytest
from hivetest import call, running_hive
from hyperhive.agents.names import agent_port, container_name, fnv1a32, validate_name
from hyperhive.errors import InvalidName
from lifecycle.support import require_nspawn

BAD = ["..", "../x", "a/b", "abcdefghij", "Alice", "", "1abc", "-a", "a b", "manager", "system"]
# Names the old rule accepted but a system below refuses: systemd (machine and host
# names) refuses a trailing '-' ("Invalid machine name: h-qa-"); "--" is DNS's reserved
# "??--" label form; '_' and '.' are refused by nixos-container and our paths.
BAD += ["qa-", "a-", "a--b", "a---------", "a_b", "a.b", "abcdefgh-"]


@pytest.mark.parametrize("name", BAD)
def test_validate_name_refuses(name: str) -> None:
    with pytest.raises(InvalidName):
        validate_name(name)


@pytest.mark.parametrize("name", ["a", "alice", "ab-12", "abcdefghi", "a-b-c-d-e", "q1"])
def test_validate_name_accepts(name: str) -> None:
    assert validate_name(name) == name


def name_sample() -> list[str]:
    """Edge cases of the rule, then a fixed pseudo-random sample over its alphabet."""
    names = ["a", "z9", "qa-", "a-", "a--b", "a-b", "-a", "abcdefghi", "abcdefgh-", "a-b-c-d-e"]
    names += ["a_b", "a.b", "A", "aB", "h", "x-1", "x1-"]
    rng = random.Random(20261130)
    alphabet = string.ascii_lowercase[:6] + string.digits[:3] + "-"
    while len(names) < 80:
        name = rng.choice(string.ascii_lowercase) + "".join(
            rng.choice(alphabet) for _ in range(rng.randint(0, 8))
        )
        if name not in names:
            names.append(name)
    return names


def nspawn_accepts_machine(machine: str, missing_dir: Path) -> bool:
    """Ask the real systemd-nspawn whether it takes `machine` as a machine name.

    It parses --machine before it looks at the directory, so a missing directory makes it
    stop right after the name check: "Invalid machine name" or "Failed to resolve path".
    """
    proc = subprocess.run(
        [
            "systemd-nspawn",
            "--register=no",
            "--keep-unit",
            f"--machine={machine}",
            "-D",
            str(missing_dir),
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode != 0, proc
    if "Invalid machine name" in proc.stderr:
        return False
    assert str(missing_dir) in proc.stderr, proc.stderr  # it got past the name
    return True


def test_every_name_we_accept_is_a_machine_name_systemd_nspawn_accepts(tmp_path: Path) -> None:
    # The field report: validate_name("qa-") passed, then `systemd-nspawn --machine=h-qa-`
    # refused it and the container crashed after the spawn had answered "ok".
    require_nspawn()
    missing = tmp_path / "no-such-root"
    refused_by_nspawn: list[str] = []
    accepted = 0
    for name in name_sample():
        try:
            agent = validate_name(name)
        except InvalidName:
            continue
        accepted += 1
        if not nspawn_accepts_machine(container_name(agent), missing):
            refused_by_nspawn.append(name)
    assert refused_by_nspawn == []
    assert accepted >= 20  # the sample really exercises the accepted side
    # and the check itself can tell: nspawn refuses the name from the report
    assert not nspawn_accepts_machine("h-qa-", missing)


def test_dashboard_spawn_form_pattern_is_the_same_rule() -> None:
    # The browser checks the form with the `pattern` and `maxlength` attributes before it
    # posts; a drifted pattern would let the operator type a name the daemon refuses (or
    # refuse one it takes). The pattern is plain enough to mean the same in Python's re.
    import hyperhive.dashboard

    page = (Path(hyperhive.dashboard.__file__).parent / "templates" / "page.html").read_text()
    field = re.search(r'<input[^>]*name="name"[^>]*>', page)
    assert field is not None
    pattern = re.search(r'pattern="([^"]+)"', field.group(0))
    maxlength = re.search(r'maxlength="(\d+)"', field.group(0))
    assert pattern is not None
    assert maxlength is not None
    for name in name_sample():
        browser_ok = len(name) <= int(maxlength.group(1)) and bool(
            re.fullmatch(pattern.group(1), name)
        )
        try:
            validate_name(name)
            daemon_ok = True
        except InvalidName as e:
            daemon_ok = "reserved" in str(e)
        assert browser_ok == daemon_ok, name


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

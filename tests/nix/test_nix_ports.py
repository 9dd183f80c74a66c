"""The port hash in Nix (modules/lib.nix) equals the daemon's (hyperhive.agents.names).

The firewall rules and harness-base's port assertion use the Nix copy; the daemon, the
identity file and the dashboard use the Python one. If they drifted, an agent's web UI
would listen on a port the host never opened and its container would refuse to build.
"""

from __future__ import annotations

import random
import string

from hyperhive.agents.names import agent_port, fnv1a32
from nixeval import NixEval, nix_string

LIB = "(import ./modules/lib.nix)"


def reference_fnv1a32(data: bytes) -> int:
    """32-bit FNV-1a exactly as SPEC §3 defines it, independent of the daemon's copy."""
    h = 2166136261
    for byte in data:
        h = ((h ^ byte) * 16777619) % 2**32
    return h


def agent_names(count: int) -> list[str]:
    """Valid agent names: edge cases first, then a fixed pseudo-random sample."""
    names = ["a", "z", "ab", "a-b", "a1", "zzzzzzzzz", "a-b-c-d-e", "a99999999", "alice", "bob"]
    rng = random.Random(20261121)
    tail = string.ascii_lowercase + string.digits + "-"
    while len(names) < count:
        name = rng.choice(string.ascii_lowercase) + "".join(
            rng.choice(tail) for _ in range(rng.randint(0, 8))
        )
        valid = not name.endswith("-") and "--" not in name
        if valid and name not in names and name not in {"manager", "operator", "system"}:
            names.append(name)
    return names


def nix_list(values: list[str]) -> str:
    return "[ " + " ".join(nix_string(v) for v in values) + " ]"


def test_nix_port_hash_equals_python_for_50_names(nix_eval: NixEval) -> None:
    names = agent_names(50)
    nix_hashes = nix_eval(f"map {LIB}.fnv1a32 {nix_list(names)}")
    nix_ports = nix_eval(f"map {LIB}.agentPort {nix_list(names)}")
    assert len(set(names)) == 50
    for name, nix_hash, nix_port in zip(names, nix_hashes, nix_ports, strict=True):
        expected = reference_fnv1a32(name.encode())
        assert nix_hash == expected == fnv1a32(name.encode()), name
        assert nix_port == 8100 + expected % 900 == agent_port(name), name


def test_fnv1a32_matches_published_vectors(nix_eval: NixEval) -> None:
    # Test vectors from the FNV reference (Noll): "" -> 0x811c9dc5, "a" -> 0xe40c292c,
    # "foobar" -> 0xbf9cf968.
    assert nix_eval(f'map {LIB}.fnv1a32 [ "" "a" "foobar" ]') == [
        0x811C9DC5,
        0xE40C292C,
        0xBF9CF968,
    ]


def test_nix_hash_covers_every_utf8_byte(nix_eval: NixEval) -> None:
    # Nix has no ord(): lib.nix maps bytes through a table built from UTF-8 encodings.
    # One code point per table range (ASCII, 2-, 3- and 4-byte sequences, every lead
    # byte) proves the table is complete and correct, not just right for a-z.
    samples = [
        "".join(chr(c) for c in range(1, 128)),
        "".join(chr(c) for c in range(0x80, 0x800, 7)),
        "".join(chr((lead - 0xC0) << 6 | 0x3F) for lead in range(0xC2, 0xE0)),
        # 3-byte leads E0-EF; E0 needs >= U+0800, ED must stay below the surrogates.
        "".join(
            chr(((lead - 0xE0) << 12) | (0x0A5A if lead == 0xE0 else 0x05A5))
            for lead in range(0xE0, 0xF0)
        ),
        "".join(chr(c) for c in (0x10000, 0x1F600, 0x40000, 0xC0000, 0x10FFFF)),
        "ünïcødé-名前-😀",
    ]
    quoted = [nix_string(s) for s in samples]
    got = nix_eval(f"map {LIB}.fnv1a32 [ {' '.join(quoted)} ]")
    assert got == [reference_fnv1a32(s.encode()) for s in samples]


def test_manager_port_is_8000_and_agent_ports_stay_in_range(nix_eval: NixEval) -> None:
    assert nix_eval(f'{LIB}.agentPort "manager"') == 8000 == agent_port("manager")
    ports = nix_eval(f"map {LIB}.agentPort {nix_list(agent_names(50))}")
    assert all(8100 <= port < 9000 for port in ports)


def test_nix_name_rule_matches_the_daemon(nix_eval: NixEval) -> None:
    candidates = ["alice", "a", "abcdefghi", "abcdefghij", "1abc", "Alice", "a_b", "a.b", ""]
    candidates += ["-a", "a-", "manager", "operator", "system", "..", "h-x", "ab c"]
    # the names the old rule let through that systemd / DNS refuse (docs/lifecycle.md)
    candidates += ["qa-", "a--b", "abcdefgh-", "a-b-c-d-e", "a-1", "a---------"]
    rng = random.Random(20261130)
    alphabet = "abc01-"
    while len(candidates) < 120:
        candidates.append(
            rng.choice("ab-") + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9)))
        )
    got = nix_eval(f"map {LIB}.isValidAgentName {nix_list(candidates)}")
    from hyperhive.agents.names import validate_name
    from hyperhive.errors import InvalidName

    def python_valid(name: str) -> bool:
        try:
            validate_name(name)
        except InvalidName:
            return False
        return True

    assert got == [python_valid(name) for name in candidates]
    assert got.count(True) >= 4  # the sample really contains valid names


def test_nix_refuses_the_names_systemd_refuses(nix_eval: NixEval) -> None:
    # systemd-nspawn --machine=h-qa- says "Invalid machine name" (tests/lifecycle/
    # test_names.py asks the real tool); harness-base's assertion must refuse it too.
    refused = ["qa-", "a-", "abcdefgh-", "a--b"]
    assert nix_eval(f"map {LIB}.isValidAgentName {nix_list(refused)}") == [False] * 4
    assert nix_eval(f'{LIB}.isValidAgentName "a-b-c-d-e"') is True


def test_container_names(nix_eval: NixEval) -> None:
    assert nix_eval(f'map {LIB}.containerName [ "alice" "manager" ]') == ["h-alice", "hm1nd"]

"""Property tests of the JSON-lines protocol on every socket kind (SPEC §4), real daemon.

For arbitrary input lines — random bytes, and JSON objects built from every command name
and field name with values of any JSON type — the daemon must: answer with exactly one JSON
object line; when it refuses, say why in a non-empty message that is not an internal error
and leave the database exactly as it was; keep the connection and the process up (the
same connection answers `whoami` afterwards).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hivetest import DaemonProcess
from hypothesis import given
from hypothesis import strategies as st
from rel_support import FUZZ, LineClient, settle, state_change, state_rows

COMMANDS = (
    "send recv ack status recent ask_operator whoami request_spawn kill start restart update"
    " rebuild request_apply_commit spawn destroy list pending approve deny questions answer"
    " cancel_question"
).split()
FIELDS = (
    "to body in_reply_to wait_seconds max ids limit question options multi ttl_seconds name"
    " description agent commit_ref purge id note answer"
).split()
LIFECYCLE = {"kill", "start", "restart", "update", "rebuild", "destroy", "spawn"}
PROTECTED = {"ana", "manager"}
"""Agents whose sockets the tests hold open: the fuzzer must not stop them under us."""

BIG = 2**70
"""Beyond sqlite's 64-bit integers: must be refused as a field error, not reach sqlite."""

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-BIG, BIG)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
plausible = st.one_of(
    st.sampled_from(["ana", "ben", "manager", "operator", "*", "nobody", "../x", "A", ""]),
    st.integers(-3, 50),
    st.integers(-BIG, BIG),
    st.lists(st.integers(-3, 50) | st.integers(-BIG, BIG), max_size=4),
    st.text(max_size=20),
)
requests = st.builds(
    lambda cmd, fields: {"cmd": cmd, **fields},
    st.sampled_from(COMMANDS) | st.text(max_size=12),
    st.dictionaries(
        st.sampled_from(FIELDS) | st.text(max_size=8), plausible | json_values, max_size=4
    ),
)


def tame(request: dict[str, Any]) -> dict[str, Any]:
    """Keep valid requests from waiting minutes or stopping the sockets under test.

    A parked recv may legitimately wait 180 s and a question with a short ttl expires later
    (a state change the next example would see); neither says anything about parsing.
    """
    wait = request.get("wait_seconds")
    if isinstance(wait, int | float) and not isinstance(wait, bool) and wait > 0.05:
        request["wait_seconds"] = 0.05
    ttl = request.get("ttl_seconds")
    if isinstance(ttl, int) and not isinstance(ttl, bool) and 0 < ttl < 3600:
        request["ttl_seconds"] = ttl + 3600
    name = request.get("name")
    cmd = request.get("cmd")
    if isinstance(cmd, str) and cmd in LIFECYCLE and isinstance(name, str) and name in PROTECTED:
        request["name"] = "ben"
    return request


class Fuzzed:
    """One daemon with a live connection on each socket kind."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.daemon = daemon
        self.db = daemon.root / "state" / "broker.sqlite"
        self.clients = {
            "host": LineClient(daemon.host_socket),
            "manager": LineClient(daemon.socket_of("manager")),
            "agent": LineClient(daemon.socket_of("ana")),
        }

    def check(self, kind: str, line: bytes) -> None:
        client = self.clients[kind]
        before = state_rows(self.db)
        reply = client.raw(line)
        assert isinstance(reply.get("kind"), str), reply
        if reply["kind"] == "err":
            message = reply.get("message")
            assert isinstance(message, str), reply
            assert message.strip(), reply
            assert "internal error" not in message, f"{line!r} crashed a handler: {message}"
            changed = state_change(before, self.db)
            assert not changed, f"refused {line!r} ({message}) but changed {changed}"
        else:
            settle(self.db)
        alive = client.call("whoami")
        assert alive["kind"] == "whoami", alive
        assert self.daemon.proc is not None
        assert self.daemon.proc.poll() is None, "the daemon exited"

    def close(self) -> None:
        for kind, client in self.clients.items():
            if kind != "host":
                # Ack what a fuzzed recv popped: otherwise the daemon hands it back once this
                # connection closes, a state change the next test would see as its own.
                while (popped := client.call("recv", max=32))["kind"] == "messages":
                    client.call("ack", ids=[m["id"] for m in popped["items"]])
            client.close()


@pytest.fixture(scope="module")
def fuzz_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon for the module: starting one per parametrized case is most of the cost."""
    proc = DaemonProcess(tmp_path_factory.mktemp("fuzz"), HYPERHIVE_HARNESS="false")
    proc.start()
    try:
        for name in ("ana", "ben"):
            assert proc.cli("spawn", name).returncode == 0
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def fuzzed(fuzz_daemon: DaemonProcess) -> Iterator[Fuzzed]:
    target = Fuzzed(fuzz_daemon)
    yield target
    target.close()


SOCKET_KINDS = ["host", "manager", "agent"]


@pytest.mark.parametrize("kind", SOCKET_KINDS)
@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes_get_one_clear_reply_and_leave_state_alone(
    fuzzed: Fuzzed, kind: str, data: bytes
) -> None:
    fuzzed.check(kind, data.replace(b"\n", b"") + b"\n")


@pytest.mark.parametrize("kind", SOCKET_KINDS)
@FUZZ
@given(request=requests)
def test_any_command_with_any_fields_is_answered_or_refused_cleanly(
    fuzzed: Fuzzed, kind: str, request: dict[str, Any]
) -> None:
    fuzzed.check(kind, json.dumps(tame(request)).encode() + b"\n")


@pytest.mark.parametrize("kind", SOCKET_KINDS)
@FUZZ
@given(value=json_values)
def test_json_that_is_not_a_request_object_is_refused(
    fuzzed: Fuzzed, kind: str, value: object
) -> None:
    fuzzed.check(kind, json.dumps(value).encode() + b"\n")


WHOAMI = b'{"cmd": "whoami"}\n'


@pytest.mark.parametrize("kind", SOCKET_KINDS)
@FUZZ
@given(
    lines=st.lists(st.binary(max_size=300), min_size=1, max_size=6),
    cuts=st.lists(st.integers(0, 4000), max_size=6),
)
def test_pipelined_lines_cut_anywhere_get_one_reply_each_in_order(
    fuzzed: Fuzzed, kind: str, lines: list[bytes], cuts: list[int]
) -> None:
    """Framing: replies follow requests one to one even when a write carries several lines
    or ends mid-line; a `whoami` after every fuzzed line marks where each answer belongs."""
    payload = b"".join(line.replace(b"\n", b"") + b"\n" + WHOAMI for line in lines)
    client = fuzzed.clients[kind]
    start = 0
    for cut in sorted({c % len(payload) for c in cuts} | {len(payload)}):
        client.sock.sendall(payload[start:cut])
        start = cut
    for line in lines:
        first = json.loads(client.file.readline())
        assert isinstance(first.get("kind"), str), (line, first)
        second = json.loads(client.file.readline())
        assert second["kind"] == "whoami", f"replies out of step after {line!r}: {second}"


@pytest.mark.parametrize("kind", SOCKET_KINDS)
def test_a_line_over_one_mib_is_refused_and_the_next_one_answered(
    fuzzed: Fuzzed, kind: str
) -> None:
    client = fuzzed.clients[kind]
    client.sock.sendall(b'{"cmd": "send", "to": "ben", "body": "' + b"x" * 2**20 + b'"}\n')
    client.sock.sendall(WHOAMI)
    refused = json.loads(client.file.readline())
    assert refused["kind"] == "err"
    assert "exceeds" in refused["message"], refused
    assert json.loads(client.file.readline())["kind"] == "whoami"


@pytest.mark.parametrize(
    ("kind", "request_"),
    [
        ("agent", {"cmd": "send", "to": "ben", "body": "x", "in_reply_to": 2**70}),
        ("agent", {"cmd": "ack", "ids": [2**70]}),
        ("host", {"cmd": "approve", "id": 2**70}),
        ("host", {"cmd": "answer", "id": 2**64, "answer": "yes"}),
    ],
)
def test_ids_beyond_64_bits_are_refused_as_field_errors(
    fuzzed: Fuzzed, kind: str, request_: dict[str, Any]
) -> None:
    """Found by the fuzzer: such ids once reached sqlite and answered 'internal error'."""
    fuzzed.check(kind, json.dumps(request_).encode() + b"\n")
    reply = fuzzed.clients[kind].call(**request_)
    assert reply["kind"] == "err", reply
    assert "field" in reply["message"], reply


def test_fuzzer_targets_are_live(fuzzed: Fuzzed) -> None:
    """The sockets under test answer as the identity they claim (else the fuzz proves nothing)."""
    for kind, name in (("host", "operator"), ("manager", "manager"), ("agent", "ana")):
        reply = fuzzed.clients[kind].call("whoami")
        assert (reply["role"], reply["name"]) == (kind, name)
    assert fuzzed.db.is_file()

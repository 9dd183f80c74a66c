"""The operator's first hour at the CLI (issue: a new operator's first hour): an agent
without a Claude login says so where the operator looks, and replies can be read without a
browser. Real `hive-c0re serve` process, real sockets, the real CLI."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from hivetest import DaemonProcess


class LineClient:
    """One blocking JSON-lines connection to a socket."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rwb")

    def call(self, cmd: str, **fields: Any) -> dict[str, Any]:
        self.file.write(json.dumps({"cmd": cmd, **fields}).encode() + b"\n")
        self.file.flush()
        reply: dict[str, Any] = json.loads(self.file.readline())
        return reply

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def next_line(stream: IO[str], within: float = 10.0) -> str:
    """The next line of a child's stdout, failing after `within` seconds."""
    ready, _, _ = select.select([stream], [], [], within)
    assert ready, f"no line within {within} s"
    return stream.readline()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path, HYPERHIVE_HARNESS="false")
    proc.env.pop("ANTHROPIC_API_KEY", None)  # a fresh machine: no key, no login
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def test_list_says_which_agents_need_a_login_and_how_to_give_one(daemon: DaemonProcess) -> None:
    assert daemon.cli("spawn", "alice").returncode == 0
    out = daemon.cli("list").stdout
    alice = next(line for line in out.splitlines() if line.startswith("alice"))
    assert "running (needs login)" in alice
    assert "L0G1N" in out
    assert "ANTHROPIC_API_KEY" in out
    # Credentials appear (what `claude auth login` writes): the hint goes away for alice.
    claude = daemon.root / "state" / "agents" / "alice" / "claude"
    (claude / ".credentials.json").write_text("{}")
    listed = json.loads(daemon.cli("--json", "list").stdout)["items"]
    assert {a["name"]: a["needs_login"] for a in listed} == {"alice": False, "manager": True}


def test_send_to_an_agent_without_a_login_says_it_will_not_answer(
    daemon: DaemonProcess,
) -> None:
    assert daemon.cli("spawn", "alice").returncode == 0
    sent = daemon.cli("send", "alice", "hi")
    assert sent.returncode == 0
    assert "alice needs a Claude login" in sent.stdout
    assert "waits in its inbox" in sent.stdout
    # Still queued: nothing is lost.
    alice = LineClient(daemon.socket_of("alice"))
    try:
        got = alice.call("recv", wait_seconds=0, max=32)
        assert any(m["body"] == "hi" for m in got["items"])
    finally:
        alice.close()


def test_inbox_prints_what_agents_sent_the_operator_and_follows_new_ones(
    daemon: DaemonProcess,
) -> None:
    assert daemon.cli("spawn", "alice").returncode == 0
    assert "no messages for the operator yet" in daemon.cli("inbox").stdout
    alice = LineClient(daemon.socket_of("alice"))
    try:
        first = alice.call("send", to="operator", body="first reply")["ids"][0]
        alice.call("send", to="manager", body="not for the operator")
        lines = daemon.cli("inbox").stdout.splitlines()
        assert len(lines) == 1
        assert lines[0].startswith(f"#{first} ")
        assert "alice: first reply" in lines[0]
        follow = subprocess.Popen(
            [sys.executable, "-m", "hyperhive.cli.c0re", "inbox", "--follow", "-n", "1"],
            env=daemon.env,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert follow.stdout is not None
            assert "first reply" in next_line(follow.stdout)
            second = alice.call("send", to="operator", body="second", in_reply_to=first)["ids"][0]
            line = next_line(follow.stdout)
            assert line.startswith(f"#{second} ")
            assert f"alice (re #{first}): second" in line
        finally:
            follow.terminate()
            follow.wait(10)
            follow.stdout.close()
    finally:
        alice.close()


def test_inbox_refuses_a_limit_out_of_range(daemon: DaemonProcess) -> None:
    bad = daemon.cli("inbox", "--limit", "0")
    assert bad.returncode == 2
    assert "between 1 and 500" in bad.stderr


def test_a_bad_setting_is_named_with_its_variable_and_rule(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hyperhive.cli.c0re import main

    monkeypatch.setenv("HYPERHIVE_HOST_NAME", "Gamma_1")
    assert main(["list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hive-c0re: bad HYPERHIVE_HOST_NAME: ")
    assert "lower-case letters" in err
    assert "pydantic" not in err  # no library boilerplate, no documentation link


@pytest.mark.parametrize("body", ["", "   ", "\n\t"])
def test_a_blank_message_is_refused_before_it_reaches_the_daemon(
    body: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As the dashboard's T4LK does; no socket is needed to say so."""
    from hyperhive.cli.c0re import main

    assert main(["--socket", str(tmp_path / "none.sock"), "send", "alice", body]) == 1
    assert capsys.readouterr().err == "hive-c0re: the message is empty: type something to send\n"


def test_a_bad_argument_names_its_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hyperhive.cli.c0re import main

    too_long = "x" * 300_000
    assert main(["--socket", str(tmp_path / "none.sock"), "send", "alice", too_long]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hive-c0re send: body: ")

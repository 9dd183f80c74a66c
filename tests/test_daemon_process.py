"""The real daemon process: kill -9 mid-burst, restart, and the admin CLI (SPEC §4, §5)."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from pathlib import Path

import pytest
from hivetest import Client, DaemonProcess, call, drain


@pytest.fixture
def daemon(tmp_path: Path):  # type: ignore[no-untyped-def]
    proc = DaemonProcess(tmp_path)
    proc.start()
    yield proc
    proc.stop()


async def test_kill_9_mid_burst_keeps_every_acknowledged_send_exactly_once(
    daemon: DaemonProcess,
) -> None:
    assert daemon.cli("spawn", "alice").returncode == 0
    assert daemon.cli("spawn", "bob").returncode == 0
    alice = daemon.socket_of("alice")
    acknowledged: dict[int, str] = {}

    async def sender(worker: int) -> None:
        try:
            client = await Client.open(alice)
        except OSError:
            return
        try:
            for i in range(10_000):
                body = f"w{worker}-{i}"
                reply = await client.call("send", to="bob", body=body)
                if reply.get("kind") == "ok":
                    acknowledged[reply["ids"][0]] = body
        except (OSError, AssertionError, asyncio.IncompleteReadError, ValueError):
            return  # the daemon died under us: expected
        finally:
            client.writer.close()

    senders = [asyncio.create_task(sender(w)) for w in range(8)]
    await asyncio.sleep(random.uniform(0.3, 0.8))
    assert len(acknowledged) > 0
    daemon.kill9()
    await asyncio.wait_for(asyncio.gather(*senders), 30)
    daemon.start()
    conn = sqlite3.connect(daemon.root / "state" / "broker.sqlite")
    stored = dict(
        conn.execute("SELECT id, body FROM messages WHERE sender='alice' AND recipient='bob'")
    )
    bodies = [b for (b,) in conn.execute("SELECT body FROM messages WHERE sender='alice'")]
    conn.close()
    for message_id, body in acknowledged.items():
        assert stored.get(message_id) == body
    assert len(bodies) == len(set(bodies)), "a send was stored twice"
    # and the restarted daemon serves them
    got = await drain(daemon.socket_of("bob"))
    assert {m["body"] for m in got if m["from"] == "alice"} == set(stored.values())


async def test_restart_redelivers_what_was_delivered_but_not_acked(daemon: DaemonProcess) -> None:
    assert daemon.cli("spawn", "bob").returncode == 0
    bob = daemon.socket_of("bob")
    await drain(bob)
    assert daemon.cli("send", "bob", "survive me").returncode == 0
    client = await Client.open(bob)
    popped = await client.call("recv")
    assert popped["items"][0]["body"] == "survive me"
    daemon.kill9()
    client.writer.close()
    daemon.start()
    again = await call(bob, "recv", wait_seconds=5)
    assert [(m["body"], m["redelivered"]) for m in again["items"]] == [("survive me", True)]


def test_cli_json_output_and_exit_codes(daemon: DaemonProcess) -> None:
    ok = daemon.cli("--json", "spawn", "alice")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["kind"] == "ok"
    listed = json.loads(daemon.cli("--json", "list").stdout)
    assert [a["name"] for a in listed["items"]] == ["alice", "manager"]
    human = daemon.cli("list")
    assert "alice" in human.stdout
    assert "running" in human.stdout
    bad = daemon.cli("--json", "send", "nobody", "hi")
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["kind"] == "err"
    refused = daemon.cli("spawn", "../x")
    assert refused.returncode == 1
    assert "invalid agent name" in refused.stderr
    assert not (daemon.root / "x").exists()
    dup = daemon.cli("spawn", "alice")
    assert dup.returncode == 1
    assert "already exists" in dup.stderr


async def test_cli_answers_questions_and_destroys(daemon: DaemonProcess) -> None:
    daemon.cli("spawn", "alice")
    asked = await call(daemon.socket_of("alice"), "ask_operator", question="Ship it?")
    listed = daemon.cli("questions")
    assert f"#{asked['id']} from alice: Ship it?" in listed.stdout
    assert daemon.cli("answer", str(asked["id"]), "yes").returncode == 0
    assert daemon.cli("questions").stdout.strip() == "no open questions"
    assert daemon.cli("destroy", "alice").returncode == 0
    state = daemon.root / "state" / "agents" / "alice"
    assert state.is_dir(), "destroy keeps the agent's state"
    assert daemon.cli("destroy", "alice", "--purge").returncode == 0
    assert not state.exists()


def test_cli_reports_an_unreachable_daemon_clearly(tmp_path: Path) -> None:
    proc = DaemonProcess(tmp_path / "nothing")
    result = proc.cli("list")
    assert result.returncode == 1
    assert "cannot reach the hyperhive socket" in result.stderr
    assert "is hive-c0re running?" in result.stderr


@pytest.mark.parametrize(
    "verb",
    [
        "serve",
        "list",
        "send",
        "pending",
        "approve",
        "diff",
        "deny",
        "questions",
        "answer",
        "cancel-question",
        "spawn",
        "request-spawn",
        "kill",
        "start",
        "restart",
        "rebuild",
        "update",
        "revive",
        "request-apply-commit",
        "destroy",
    ],
)
def test_every_verb_has_help(tmp_path: Path, verb: str) -> None:
    result = DaemonProcess(tmp_path).cli(verb, "--help")
    assert result.returncode == 0
    assert f"hive-c0re {verb}" in result.stdout

"""Item rendering: what each macro shows for the data it is given."""

from __future__ import annotations

from hyperhive.dashboard.views import Renderer, agent_view, port_conflicts, readable_body, version
from hyperhive.lifecycle.names import agent_port

RECORD = {
    "name": "alice",
    "role": "agent",
    "state": "running",
    "created_at": 1,
    "destroyed_at": None,
    "allowed_recipients": [],
}


def test_badges_and_deployed_sha_show_when_the_record_carries_them() -> None:
    renderer = Renderer()
    plain = renderer.item("containers", agent_view(RECORD))
    assert "badge" not in plain
    assert "@" not in plain.split("data-port")[0]
    flagged = agent_view(
        {
            **RECORD,
            "stale": True,
            "needs_login": True,
            "rate_limited": True,
            "deployed_sha": "0123456789abcdef0123",
        }
    )
    html = renderer.item("containers", flagged)
    for label in (">stale<", ">needs login → log in ↗<", ">rate-limited<", "@0123456789<"):
        assert label in html, label


def test_transient_states_show_a_spinner() -> None:
    renderer = Renderer()
    assert 'class="spin"' in renderer.item(
        "containers", agent_view({**RECORD, "state": "spawning"})
    )
    assert 'class="spin"' not in renderer.item("containers", agent_view(RECORD))


def test_the_manager_row_has_no_destroy_button() -> None:
    html = Renderer().item(
        "containers", agent_view({**RECORD, "name": "manager", "role": "manager"})
    )
    assert "DESTR0Y" not in html
    assert "hm1nd" in html


def test_message_bodies_are_escaped() -> None:
    row = {"id": 1, "from": "alice", "to": "operator", "body": "<script>x()</script>", "sent_at": 0}
    html = Renderer().item("flow", row)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_multi_questions_use_checkboxes() -> None:
    question = {
        "id": 3,
        "asker": "alice",
        "question": "which?",
        "options": ["a", "b"],
        "multi": True,
        "asked_at": 0,
        "deadline_at": 100,
    }
    html = Renderer().item("questions", question)
    assert html.count('type="checkbox"') == 2
    assert 'data-deadline="100"' in html


def test_version_changes_with_the_data() -> None:
    assert version(RECORD) == version(dict(RECORD))
    assert version(RECORD) != version({**RECORD, "state": "stopped"})


def test_port_conflicts_name_every_claimant() -> None:
    clash = next(f"x{i}" for i in range(100_000) if agent_port(f"x{i}") == agent_port("alice"))
    pending = [{"kind": "spawn", "agent": clash, "id": 7}]
    assert port_conflicts([RECORD], pending) == [
        {"port": agent_port("alice"), "agents": ["alice", f"{clash} (spawn request #7)"]}
    ]
    assert port_conflicts([RECORD], []) == []


def test_system_events_read_as_words_and_long_bodies_are_clipped() -> None:
    event = '{"agent": "bob", "event": "spawned", "revived": false}'
    assert readable_body(event) == "spawned · agent bob · revived false"
    assert readable_body("{not json") == "{not json"
    clipped = readable_body("x" * 5000)
    assert clipped.endswith("… (3000 more characters)")
    assert len(clipped) < 2100

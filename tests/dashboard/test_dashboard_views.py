"""Item rendering: what each macro shows for the data it is given."""

from __future__ import annotations

from hyperhive.agents.names import agent_port
from hyperhive.dashboard.views import Renderer, agent_view, port_conflicts, readable_body, version

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
    # A field with no value is left out (the first-hour walk read "note null").
    resolved = '{"event": "approval_resolved", "agent": "bob", "note": null, "status": "approved"}'
    assert readable_body(resolved) == "approval_resolved · agent bob · status approved"
    assert readable_body("{not json") == "{not json"
    clipped = readable_body("x" * 5000)
    assert clipped.endswith("… (3000 more characters)")
    assert len(clipped) < 2100


def test_messages_show_their_id_what_they_reply_to_and_inbox_ones_a_reply_button() -> None:
    renderer = Renderer()
    to_operator = {
        "id": 7,
        "from": "alice",
        "to": "operator",
        "body": "done, see #3",
        "sent_at": 1,
        "in_reply_to": 3,
        "broadcast": False,
    }
    html = renderer.item("inbox", to_operator)
    assert ">#7<" in html
    assert ">re #3<" in html
    assert 'class="reply" data-to="alice"' in html
    to_agent = {**to_operator, "from": "operator", "to": "alice", "in_reply_to": None}
    flow = renderer.item("flow", to_agent)
    assert ">#7<" in flow
    assert "re #" not in flow
    assert 'class="reply"' not in flow
    from_system = {**to_operator, "from": "system", "in_reply_to": None}
    assert 'class="reply"' not in renderer.item("inbox", from_system)

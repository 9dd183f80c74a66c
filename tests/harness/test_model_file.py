"""The model file is untrusted input: only a model name reaches ``claude --model``."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest
from hyperhive.harness.model import MAX_MODEL_FILE, ModelFile
from standin.api import StandIn, Text

from harness.test_loop import alice


@pytest.mark.parametrize(
    "content",
    [
        "--dangerously-skip-permissions\n",
        "sonnet --settings=/tmp/evil.json",
        "sonnet\n--permission-mode\nbypassPermissions",
        "claude-$(touch /tmp/pwned)",
        "x" * 80,
        "sonnet" + " " * MAX_MODEL_FILE,  # valid name, but the file is too long to be one
        "\x00haiku",
    ],
)
def test_a_model_file_that_is_not_a_model_name_falls_back_to_the_default(
    tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "hyperhive-model"
    path.write_text(content)
    model = ModelFile(path, "haiku")
    with caplog.at_level(logging.WARNING):
        assert model.read() == "haiku"
        assert model.read() == "haiku"
    rejected = [r for r in caplog.records if "model file ignored" in r.getMessage()]
    assert len(rejected) == 1, "one clear line, not one per turn"


def test_valid_names_are_used(tmp_path: Path) -> None:
    path = tmp_path / "hyperhive-model"
    model = ModelFile(path, "haiku")
    assert model.read() == "haiku"  # absent
    for name in ("sonnet", "opus", "claude-sonnet-4-5", "claude-opus-4-1[1m]"):
        path.write_text(name + "\n")
        assert model.read() == name


def test_a_symlinked_model_file_is_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("opus\n")
    (tmp_path / "hyperhive-model").symlink_to(elsewhere)
    assert ModelFile(tmp_path / "hyperhive-model", "haiku").read() == "haiku"


def test_a_fifo_model_file_does_not_block_the_turn(tmp_path: Path) -> None:
    path = tmp_path / "hyperhive-model"
    os.mkfifo(path)
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(ModelFile(path, "haiku").read()))
    reader.start()
    reader.join(20)
    if reader.is_alive():  # unblock it so the test run can end, then fail
        with open(path, "w") as writer:
            writer.write("x")
        reader.join(20)
        pytest.fail("reading a FIFO model file blocked")
    assert result == ["haiku"]


def test_an_invalid_default_model_is_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        model = ModelFile(tmp_path / "hyperhive-model", "--dangerously-skip-permissions")
    assert model.read() == "haiku"
    assert any("HIVE_DEFAULT_MODEL" in r.getMessage() for r in caplog.records)


async def test_a_hostile_model_file_never_reaches_claude(
    claude_bin: Path, standin: StandIn, tmp_path: Path
) -> None:
    async with alice(tmp_path, claude_bin, standin) as a:
        standin.script(a.run.key, Text("one"))
        a.run.harness.settings.model_path.write_text("--model=opus\n")
        first = await a.send("one")
        await a.turn_end(first)
        (request,) = standin.received(a.run.key)
    assert "haiku" in request.body["model"]

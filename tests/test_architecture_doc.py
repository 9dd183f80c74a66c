"""docs/architecture.md's code map names only files that exist (names: tests/test_docs.py)."""

from __future__ import annotations

import re
from pathlib import Path

import hyperhive

PKG = Path(hyperhive.__file__).parent
ROOT = PKG.parents[2]
DOC = ROOT / "docs" / "architecture.md"
TICKED = re.compile(r"`([^`\s]+)`")
FILE = re.compile(r"[\w./\-]+\.(py|md|nix|js|css)|[\w.\-/]+/")
DOTTED = re.compile(r"[a-z_]+(\.[A-Za-z_]+)+")


def code_map_bullets() -> list[str]:
    section = DOC.read_text().split("## Code map", 1)[1].split("\n## ", 1)[0]
    return [b for b in re.split(r"\n(?=- )", section) if b.startswith("- ")]


def missing_files(bullet: str) -> list[str]:
    """Files and directories a bullet names that exist neither in the package, the repository
    nor the directory the bullet is about (its first ticked names, before the dash). An
    absolute path is a route or a place on a host, not a file of the repository."""
    heads = [PKG / t for t in TICKED.findall(bullet.split(" — ")[0]) if t.endswith("/")]
    missing = []
    for tick in TICKED.findall(bullet):
        if (
            FILE.fullmatch(tick)
            and not tick.startswith("/")
            and not any(c.exists() for c in (PKG / tick, ROOT / tick, *(h / tick for h in heads)))
        ):
            missing.append(tick)
    return missing


def test_the_code_map_names_only_files_that_exist() -> None:
    bullets = code_map_bullets()
    assert len(bullets) > 20
    assert {t: missing for b in bullets if (missing := missing_files(b)) for t in [b[:40]]} == {}


def test_the_code_map_check_sees_a_moved_file() -> None:
    assert missing_files("- `lifecycle/` — names (`names.py`), verbs (`service.py`)") == [
        "names.py"
    ]
    assert missing_files("- `agents/` — names (`names.py`)") == []

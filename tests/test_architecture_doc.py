"""docs/architecture.md names only what exists: the code map's files, the dotted names cited."""

from __future__ import annotations

import importlib
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
    nor the directory the bullet is about (its first ticked names, before the dash)."""
    heads = [PKG / t for t in TICKED.findall(bullet.split(" — ")[0]) if t.endswith("/")]
    missing = []
    for tick in TICKED.findall(bullet):
        if FILE.fullmatch(tick) and not any(
            c.exists() for c in (PKG / tick, ROOT / tick, *(h / tick for h in heads))
        ):
            missing.append(tick)
    return missing


def resolves(dotted: str) -> bool:
    """`a.b.c`: the longest importable hyperhive module, then attributes down to the end."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(["hyperhive", *parts[:cut]]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_the_code_map_names_only_files_that_exist() -> None:
    bullets = code_map_bullets()
    assert len(bullets) > 20
    assert {t: missing for b in bullets if (missing := missing_files(b)) for t in [b[:40]]} == {}


def test_the_code_map_check_sees_a_moved_file() -> None:
    assert missing_files("- `lifecycle/` — names (`names.py`), verbs (`service.py`)") == [
        "names.py"
    ]
    assert missing_files("- `agents/` — names (`names.py`)") == []


def test_every_dotted_hyperhive_name_in_the_doc_resolves() -> None:
    top = {p.stem if p.suffix == ".py" else p.name for p in PKG.iterdir()}
    dotted = [t for t in TICKED.findall(DOC.read_text()) if DOTTED.fullmatch(t)]
    files = {"py", "sqlite", "md", "nix", "js", "css", "sock", "html"}
    cited = [t for t in dotted if t.split(".")[0] in top and t.split(".")[-1] not in files]
    assert len(cited) >= 3
    assert [t for t in cited if not resolves(t)] == []
    assert not resolves("lifecycle.names.validate_name")

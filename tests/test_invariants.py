"""Architecture invariants that a walk over the source can check (docs/architecture.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import hyperhive
from hyperhive.settings import HarnessSettings, Settings

PKG = Path(hyperhive.__file__).parent
SQL = re.compile(r"\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|CREATE TABLE)\b")
SERVICES = ["broker/service.py", "questions/service.py", "approvals/service.py"]


def python_files() -> list[Path]:
    files = sorted(PKG.rglob("*.py"))
    assert len(files) > 20
    return files


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def string_constants(path: Path) -> list[str]:
    return [
        node.value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_sql_lives_only_in_stores_db_and_the_sweep() -> None:
    allowed_dirs = {"db"}
    offenders = []
    for path in python_files():
        rel = path.relative_to(PKG)
        if rel.name == "store.py" or rel.parts[0] in allowed_dirs or rel.name == "events_worker.py":
            continue
        if any(SQL.search(s) for s in string_constants(path)):
            offenders.append(str(rel))
    assert offenders == []


def test_services_do_not_import_web_or_mcp_libraries() -> None:
    for rel in SERVICES:
        mods = imports(PKG / rel)
        assert not {m.split(".")[0] for m in mods} & {"aiohttp", "jinja2", "mcp"}, rel


def test_every_setting_is_described() -> None:
    for cls in (Settings, HarnessSettings):
        for name, field in cls.model_fields.items():
            assert field.description, f"{cls.__name__}.{name} has no description"


def test_daemon_side_names_are_validated_by_one_function() -> None:
    # The only regex for agent names is in agents/names.py.
    from hyperhive.agents.names import NAME_RE

    pattern = NAME_RE.pattern
    holders = [str(p.relative_to(PKG)) for p in python_files() if pattern in p.read_text()]
    assert holders == ["agents/names.py"]

"""What a source file of the hyperhive package imports, for the import-boundary tests."""

from __future__ import annotations

import ast
from pathlib import Path

import hyperhive

PKG = Path(hyperhive.__file__).parent


def source_files(package: str) -> list[Path]:
    """The .py files of `hyperhive.<package>`; fails if it moved or emptied (no vacuous pass)."""
    where = PKG / package
    assert where.is_dir(), f"{where} is gone: point the boundary test at its new home"
    files = sorted(where.rglob("*.py"))
    assert [f for f in files if f.name != "__init__.py"], f"{where} has no modules"
    return files


def hyperhive_units(path: Path) -> set[str]:
    """The names directly under `hyperhive` that the module at `path` imports."""
    return units_imported(path.read_text(), path.relative_to(PKG).parent.parts)


def units_imported(source: str, package: tuple[str, ...]) -> set[str]:
    """The names directly under `hyperhive` that `source`, in `hyperhive.<package>`, imports.

    Counts `import hyperhive.x`, `from hyperhive.x import y`, `from hyperhive import x` and
    relative imports alike; a bare `import hyperhive` counts as "hyperhive" (it reaches
    whatever is loaded), so no spelling slips past a boundary.
    """
    here = ["hyperhive", *package]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                base += node.module.split(".") if node.module else []
            else:
                base = (node.module or "").split(".")
            if base[0] != "hyperhive":
                continue
            if len(base) > 1:
                found.add(base[1])
            else:
                found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "hyperhive":
                    found.add(parts[1] if len(parts) > 1 else "hyperhive")
    return found

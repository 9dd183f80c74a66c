"""Architecture invariant: the harness and the MCP server never import the daemon's packages."""

from __future__ import annotations

import ast
from pathlib import Path

import hyperhive

PKG = Path(hyperhive.__file__).parent
ALLOWED = {
    "wire",
    "settings",
    "errors",
    "db",
    "harness",
    "mcp_server",
    "webui",
    "http",
    "ports",
    "webstatic",
    "logtail",
    "web",
}


def imported_hyperhive_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {n.split(".")[1] for n in names if n.startswith("hyperhive.")}
    return found


def test_harness_side_imports_only_the_container_boundary() -> None:
    files = [
        *(PKG / "harness").glob("*.py"),
        *(PKG / "mcp_server").glob("*.py"),
        *(PKG / "webui").glob("*.py"),
        PKG / "cli" / "harness.py",
    ]
    assert len(files) > 5
    for path in files:
        assert imported_hyperhive_modules(path) <= ALLOWED, path

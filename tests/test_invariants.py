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


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the hyperhive modules it imports (function-level and TYPE_CHECKING imports too)."""
    modules = {module_name(p): p for p in python_files()}

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for mod, path in modules.items():
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        out: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package[: len(package) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from a import b` imports the module a.b if there is one, else a name of a.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] != "hyperhive":
                    continue
                found = resolve(target)
                if found and found != mod:
                    out.add(found)
        graph[mod] = out
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def unit(module: str) -> str:
    """The package (or top-level module) directly under hyperhive a module belongs to."""
    return ".".join(module.split(".")[:2])


def test_the_import_graph_walk_sees_the_imports_it_orders() -> None:
    graph = import_graph()
    assert "hyperhive.broker.store" in graph["hyperhive.broker.service"]
    assert "hyperhive.errors" in graph["hyperhive.sockets.dispatch"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_among_modules() -> None:
    # A cycle, even through an import inside a function, means neither module can be read,
    # tested or changed without the other: composition belongs above both.
    assert cycles(import_graph()) == []


def test_no_package_is_both_above_and_below_another() -> None:
    # Packages form floors: each one imports only packages below it, never one that imports
    # it back (directly or through others).
    units: dict[str, set[str]] = {}
    for mod, targets in import_graph().items():
        units.setdefault(unit(mod), set()).update(unit(t) for t in targets if unit(t) != unit(mod))
    assert cycles(units) == []


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module `start` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_dashboard_never_reaches_the_daemon() -> None:
    # The dashboard takes the daemon's services as dashboard.services.HiveServices; the
    # daemon is composed with it above both, in cli/.
    graph = import_graph()
    dashboard = [m for m in graph if m.startswith("hyperhive.dashboard")]
    assert "hyperhive.dashboard.services" in reachable(graph, "hyperhive.dashboard")
    assert len(dashboard) >= 4
    assert {m for m in dashboard if "hyperhive.daemon" in reachable(graph, m)} == set()


def test_only_the_composition_root_imports_the_daemon() -> None:
    graph = import_graph()
    importers = {m for m, targets in graph.items() if "hyperhive.daemon" in targets}
    assert importers == {"hyperhive.cli.c0re_serve"}

"""Architecture invariant: the harness and the MCP server never import the daemon's packages."""

from __future__ import annotations

from hivetest.imports import PKG, hyperhive_units, source_files, units_imported

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
HARNESS_SIDE = ["harness", "mcp_server", "webui"]


def test_harness_side_imports_only_the_container_boundary() -> None:
    files = [*(f for p in HARNESS_SIDE for f in source_files(p)), PKG / "cli" / "harness.py"]
    for path in files:
        assert hyperhive_units(path) <= ALLOWED, path


def test_the_import_walk_sees_every_spelling_of_an_import() -> None:
    webui = ("webui",)
    assert units_imported("import hyperhive.lifecycle.service", webui) == {"lifecycle"}
    assert units_imported("from hyperhive.broker import service", webui) == {"broker"}
    assert units_imported("from hyperhive import lifecycle, ports", webui) == {"lifecycle", "ports"}
    assert units_imported("from ..lifecycle import service", webui) == {"lifecycle"}
    assert units_imported("from .. import daemon", webui) == {"daemon"}
    assert units_imported("from . import control", webui) == {"webui"}
    assert units_imported("import hyperhive", webui) == {"hyperhive"}
    assert units_imported("def f():\n    from hyperhive import daemon\n", webui) == {"daemon"}
    assert units_imported("import json\nfrom aiohttp import web", webui) == set()

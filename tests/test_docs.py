"""Every path and dotted hyperhive name the docs put in backticks exists.

What counts, in README.md and docs/*.md (fenced code blocks are examples and not read):

- A *path*: a ticked word of path characters with a `/` in it or a file suffix
  (`webui/app.py`, `flake.nix`, `bench/`). It must exist relative to the repository root,
  to `pkgs/hyperhive/hyperhive`, or to the page's own package (`HOMES`); a bare file name
  (`loop.py`) must exist somewhere in the tree. `{a,b}` is expanded and `*` globbed. Not
  paths: absolute paths and URLs (where things live on a host or in a container, or a
  route), words with a placeholder (`<name>`) or a variable (`$X`), command-line flags, and
  the runtime names in `RUNTIME` (files the daemon and the harness create, not the repo's).
- A *dotted name* rooted in the package: `broker.service.Broker.send`,
  `hyperhive.settings.Settings`, `broker/store.RECENT_BUDGET` must import and resolve
  attribute by attribute; `Class.attr` for a class the package defines must have that
  attribute on it. `hyperhive.<opt>` and `services.hyperhive.<opt>` that are not Python are
  NixOS options: `<opt>` must be declared in `modules/`.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
from functools import cache
from pathlib import Path

import hyperhive

PKG = Path(hyperhive.__file__).parent
ROOT = PKG.parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
TICKED = re.compile(r"`([^`\n]+)`")
PATHLIKE = re.compile(r"[\w.*{},\-]+(/[\w.*{},\-]*)*")
SUFFIXES = {
    "py", "md", "nix", "js", "css", "html", "j2", "json", "toml", "lock", "sqlite", "txt",
    "png", "sh", "ico", "conf", "pid", "log", "sock",
}  # fmt: skip
DOTTED = re.compile(r"[A-Za-z_]\w*([./][A-Za-z_]\w*)+(\(\))?")

# Each page's own package: a path there may be written relative to it.
HOMES = {
    "dashboard.md": PKG / "dashboard",
    "web-ui.md": PKG / "webui",
    "turn-loop.md": PKG / "harness",
    "lifecycle.md": PKG / "lifecycle",
    "approvals.md": PKG / "approvals",
    "persistence.md": PKG,
    "hive-forge.md": ROOT / "pkgs" / "hive-forge" / "hive_forge",
    "nixos.md": ROOT / "modules",
}

# Names of things that exist only at run time (on the host, in a container, in a git repo
# the daemon owns), never in this repository. Keep this list short and literal.
RUNTIME = {
    "broker.sqlite",  # <state_dir>/broker.sqlite
    "hyperhive-events.sqlite",  # an agent's event store, <state>/
    "hyperhive-identity.json",  # written into an agent's applied repo
    "claude-settings.json", "claude-mcp-config.json", "claude-system-prompt.md",  # boot files
    ".credentials.json", "claude/.credentials.json",  # claude's login, in the agent's claude/
    "harness.log", "harness.pid", "nspawn.pid",  # <state_dir>/host/<name>/
    "mcp.sock", "manager/mcp.sock",  # the sockets, under <run_dir>
    "run/manager/", "state/", "claude/", "host/", "proposed/", "applied/", "agents/",
    "state/hyperhive-events.sqlite", "agents/manager/config",
    "refs/", "objects/", "objects/info", "objects/info/alternates",  # inside a git repo
    "applied/<name>/.git/objects",
    ".hive-scratch/", ".venv/", ".ci/run", ".ci/nix-check", "./.hyperhive/",
    "node_modules/.bin/claude", ".bin/claude",  # the npm install of the CLI
    "shared/tools/poetry-lock",  # a tool of the development machine, not of the repo
    "common/hive-auth.js", "common/hive-base.css", "common/hive-ui.js",  # URLs under /static/
    "./secret",  # a Nix path literal in an operator's config (gotchas.md)
    "psycopg/pq/misc.py", "psycopg/pq/_pq_ctypes.py",  # inside psycopg's wheel
    "pg_hba.conf",  # PostgreSQL's own file, on the database host
    "items.html",  # dashboard/templates/items.html, named as the template it is
}  # fmt: skip
# Slashed words that are not paths at all.
NOT_PATHS = {"owner/name", "they/them", "system/api_retry", "system/task_started", "text/plain"}
# Files of other projects the docs name (seen in the Nix store, not here).
ELSEWHERE = {"mk-poetry-dep.nix"}  # poetry2nix's


def ticks(doc: Path) -> list[str]:
    return TICKED.findall(FENCE.sub("", doc.read_text()))


def expand(word: str) -> list[str]:
    """`webui.{js,css}` -> `webui.js`, `webui.css` (one brace group is all the docs use)."""
    m = re.search(r"\{([^{}]*)\}", word)
    if not m:
        return [word]
    return [w for alt in m.group(1).split(",") for w in expand(word.replace(m.group(0), alt, 1))]


def is_path(word: str) -> bool:
    if word in NOT_PATHS or word.startswith(("/", "-")) or not PATHLIKE.fullmatch(word):
        return False
    last = expand(word)[0].rstrip("/").rsplit("/", 1)[-1]
    stem, dot, suffix = last.rpartition(".")
    if dot and suffix not in SUFFIXES:
        return False  # `broker/store.RECENT_BUDGET`: a dotted name
    return "/" in word or (bool(stem) and bool(dot))


@cache
def tree_names() -> frozenset[str]:
    """Every file and directory name in the repository (not in .git, caches or the venv)."""
    skip = {".git", ".venv", ".cache", "node_modules", "__pycache__", ".mypy_cache"}
    names: set[str] = set()
    for _, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in skip]
        names.update(dirs, files)
    return frozenset(names)


def path_exists(word: str, home: Path | None) -> bool:
    if word in RUNTIME or word in ELSEWHERE:
        return True
    bases = [ROOT, PKG, PKG.parent, *([home] if home else [])]
    for each in expand(word.removeprefix("./")):
        if "/" not in each.rstrip("/") and "*" not in each:
            if each.rstrip("/") in tree_names():
                continue
            return False
        if not any(list(base.glob(each.rstrip("/"))) for base in bases):
            return False
    return True


def missing_paths(doc: Path) -> list[str]:
    home = HOMES.get(doc.name)
    return [t for t in ticks(doc) if is_path(t) and not path_exists(t, home)]


# -- dotted names --------------------------------------------------------------------------


@cache
def top_level() -> frozenset[str]:
    """The package's modules and subpackages (not its data directories, like `templates/`)."""
    return frozenset(
        p.stem if p.suffix == ".py" else p.name
        for p in PKG.iterdir()
        if p.suffix == ".py" or (p / "__init__.py").is_file()
    )


@cache
def classes() -> dict[str, list[str]]:
    """Class name -> the modules of the package that define a class of that name."""
    found: dict[str, list[str]] = {}
    for path in PKG.rglob("*.py"):
        module = ".".join(path.relative_to(PKG.parent).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                found.setdefault(node.name, []).append(module.removesuffix(".__init__"))
    return found


@cache
def submodules() -> dict[str, list[str]]:
    """Module name -> the full names of the package's modules of that name (`repos` ->
    `hyperhive.lifecycle.repos`): the docs write a package's modules without the package."""
    found: dict[str, list[str]] = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        if len(parts) > 2 and parts[-1] != "__init__":
            found.setdefault(parts[-1], []).append(".".join(parts))
    return found


@cache
def nix_options() -> frozenset[str]:
    text = "\n".join(p.read_text() for p in (ROOT / "modules").glob("*.nix"))
    return frozenset(re.findall(r"(\w+) = lib\.mk(?:Enable|Package)?Option\b", text))


def attrs_resolve(obj: object, attrs: list[str]) -> bool:
    for attr in attrs:
        if not hasattr(obj, attr):
            return False
        obj = getattr(obj, attr)
    return True


def resolves(dotted: str) -> bool:
    """`a.b.c`: the longest importable hyperhive module, then attributes down to the end."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            module = importlib.import_module(".".join(["hyperhive", *parts[:cut]]))
        except ModuleNotFoundError:
            continue
        return attrs_resolve(module, parts[cut:])
    return False


def dotted_names(doc: Path) -> list[str]:
    """The ticked dotted names of `doc` that claim to be the package's (see the docstring)."""
    out = []
    for tick in ticks(doc):
        if not DOTTED.fullmatch(tick) or tick.rsplit(".", 1)[-1] in SUFFIXES:
            continue
        if "." not in tick.rsplit("/", 1)[-1]:
            continue  # `agents/manager/config`: a path
        name = tick.removesuffix("()").replace("/", ".")
        if name == "services.hyperhive" or name.startswith("services.hyperhive."):
            out.append(name)  # a NixOS option (before `dashboard.services` claims it)
            continue
        first = name.split(".")[0]
        ours = first in {*top_level(), *submodules(), *classes(), "hyperhive"}
        if ours or name.startswith("services.hyperhive."):
            out.append(name)
    return out


def name_exists(name: str) -> bool:
    parts = name.split(".")
    if parts[0] == "services":
        return len(parts) == 2 or parts[-1] in nix_options()  # the module's own root
    if parts[0] == "hyperhive":
        if parts[1] in top_level():
            return resolves(".".join(parts[1:]))
        if parts[1] in {"nixosModules", "lib", "packages", "overlays", "templates"}:
            return True  # a flake output (checked by tests/nix)
        return len(parts) == 2 and parts[1] in nix_options()
    if parts[0] in top_level():
        return resolves(name)
    if parts[0] in submodules():
        return any(
            attrs_resolve(importlib.import_module(m), parts[1:]) for m in submodules()[parts[0]]
        )
    modules = classes()[parts[0]]
    return any(
        attrs_resolve(getattr(importlib.import_module(m), parts[0]), parts[1:]) for m in modules
    )


# -- code maps -----------------------------------------------------------------------------

IDENT = re.compile(r"([A-Za-z_]\w*)(\(.*\))?")


def code_map_entries(doc: Path) -> list[tuple[list[Path], list[str]]]:
    """(the source files an entry describes, the identifiers it ticks) for each code-map entry:
    a table row whose first cell is a ticked .py file (relative to the page's home or the
    package), or a bullet of architecture.md's code map (its ticked heads before the dash)."""
    entries = []
    home = HOMES.get(doc.name, PKG)
    text = FENCE.sub("", doc.read_text())
    for row in re.findall(r"^\| `([^`]+\.py)` \|(.*)\|$", text, re.M):
        sources = [c for base in (home, PKG) if (c := base / row[0]).is_file()][:1]
        entries.append((sources, TICKED.findall(row[1])))
    if doc.name == "architecture.md":
        section = text.split("## Code map", 1)[1].split("\n## ", 1)[0]
        for bullet in re.split(r"\n(?=- )", section)[1:]:
            head, _, body = bullet.partition(" — ")
            sources = []
            for tick in TICKED.findall(head):
                where = PKG / tick
                sources += sorted(where.rglob("*.py")) if where.is_dir() else [where]
            if all(p.is_relative_to(PKG) and p.exists() for p in sources):
                entries.append((sources, TICKED.findall(body)))
    return entries


def unknown_in_code_map(doc: Path) -> list[str]:
    """Ticked identifiers of a code-map entry that its source files never mention."""
    unknown = []
    for sources, ticked in code_map_entries(doc):
        assert sources, f"{doc.name}: a code-map entry names no existing file: {ticked}"
        source = "\n".join(p.read_text() for p in sources)
        for tick in ticked:
            m = IDENT.fullmatch(tick)
            if m and not re.search(rf"\b{m.group(1)}\b", source):
                unknown.append(tick)
    return unknown


# -- the tests -----------------------------------------------------------------------------


def test_every_ticked_path_in_the_docs_exists() -> None:
    assert len(DOCS) > 8
    assert {d.name: m for d in DOCS if (m := missing_paths(d))} == {}


def test_every_dotted_hyperhive_name_in_the_docs_resolves() -> None:
    cited = {d.name: dotted_names(d) for d in DOCS}
    assert sum(map(len, cited.values())) > 20
    assert {
        n: bad for n, names in cited.items() if (bad := [x for x in names if not name_exists(x)])
    } == {}


def test_every_name_a_code_map_gives_a_file_is_in_that_file() -> None:
    assert sum(len(code_map_entries(d)) for d in DOCS) > 30
    assert {d.name: u for d in DOCS if (u := unknown_in_code_map(d))} == {}


def test_the_docs_check_tells_paths_and_names_apart() -> None:
    home = PKG / "webui"
    assert [w for w in ("webui/app.py", "flake.nix", "bench/", "loop.py") if is_path(w)] == [
        "webui/app.py", "flake.nix", "bench/", "loop.py",
    ]  # fmt: skip
    for word in ("/run/hive/web-key", "agents/<name>/", "-r/--repo", "http://x/y", "$X/y"):
        assert not is_path(word), word
    assert path_exists("static/webui.{js,css}", home)
    assert not path_exists("static/webui.{js,ts}", home)
    assert not path_exists("static/hive.css", home)
    assert not path_exists("port_table.py", None)
    assert path_exists("*/store.py", None)
    assert name_exists("agents.names.validate_name")
    assert not name_exists("lifecycle.names.validate_name")
    assert name_exists("hyperhive.settings.Settings")
    assert name_exists("broker.store.RECENT_BUDGET")
    assert name_exists("Broker.send")
    assert not name_exists("Broker.port_from_name")
    assert name_exists("hyperhive.webHost")
    assert not name_exists("hyperhive.webPort")

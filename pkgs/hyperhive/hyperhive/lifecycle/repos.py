"""An agent's two git repos: "proposed" (the manager edits it) and "applied" (built from).

Seeding (SPEC §8, docs/nixos.md "The agent flake"): the proposed repo gets every file of
the agent template plus ``hyperhive-identity.json`` in one initial commit, and the applied
repo is cloned from it, so the identity file is part of the history both share and an
approved commit (a descendant of that seed) still carries it.
"""

from __future__ import annotations

import json
import logging
import platform
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from hyperhive.errors import Unavailable
from hyperhive.lifecycle.git import Git
from hyperhive.lifecycle.names import MANAGER, agent_port
from hyperhive.lifecycle.paths import AgentPaths

logger = logging.getLogger(__name__)

IDENTITY_FILE = "hyperhive-identity.json"
AGENT_NIX = "agent.nix"
# Written next to the applied repo's objects: which flake revision the running container
# was last built from (auto_update compares it with HYPERHIVE_FLAKE_REF).
DEPLOYED_FILE = "hyperhive-deployed.json"


def identity(name: str, operator_pronouns: str | None = None) -> dict[str, object]:
    """The identity the agent's flake builds from."""
    ident: dict[str, object] = {
        "name": name,
        "role": "manager" if name == MANAGER else "agent",
        "port": agent_port(name),
        # The agent's nixpkgs.hostPlatform: without it an aarch64 host builds x86_64 agents.
        "system": host_system(),
    }
    if operator_pronouns:
        ident["operator_pronouns"] = operator_pronouns
    return ident


def host_system() -> str:
    """This host's Nix system string (x86_64-linux, aarch64-linux, ...)."""
    machine = platform.machine()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine) + "-linux"


def identity_text(name: str, operator_pronouns: str | None = None) -> str:
    """The identity file's exact bytes (stable, so a rewrite is a no-op)."""
    return json.dumps(identity(name, operator_pronouns), indent=2, sort_keys=True) + "\n"


def copy_template(template: Path, dest: Path) -> None:
    """Copy every file of `template` into `dest` with fresh, writable modes.

    Like ``cp -r --no-preserve=mode,ownership``: template files come from the read-only
    Nix store, and a copy that kept their modes could not be edited or committed over.
    """
    if not template.is_dir():
        raise Unavailable(
            f"agent template directory {template} does not exist;"
            " set HYPERHIVE_AGENT_TEMPLATE_DIR to a directory with flake.nix and agent.nix"
        )
    for src in sorted(template.rglob("*")):
        rel = src.relative_to(template)
        if ".git" in rel.parts:
            continue
        target = dest / rel
        if src.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(0o755)
        elif src.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            target.chmod(0o755 if src.stat().st_mode & 0o111 else 0o644)


async def seed(git: Git, paths: AgentPaths, template: Path, pronouns: str | None) -> bool:
    """Create the proposed and applied repos if missing; True if anything was created.

    Idempotent: a revived agent keeps both repos as they are.
    """
    created = False
    if not (paths.config / ".git").exists():
        paths.config.mkdir(parents=True, exist_ok=True)
        copy_template(template, paths.config)
        (paths.config / IDENTITY_FILE).write_text(identity_text(paths.name, pronouns))
        await git.run(paths.config, "init", "-q", "-b", "main")
        await git.run(paths.config, "add", "-A")
        await git.run(
            paths.config, "commit", "-q", "-m", f"hive-c0re: seed {paths.name} from the template"
        )
        created = True
    if not (paths.applied / ".git").exists():
        paths.applied.parent.mkdir(parents=True, exist_ok=True)
        if paths.applied.exists():
            shutil.rmtree(paths.applied)
        await git.run(
            paths.applied.parent, "clone", "-q", "--branch", "main", str(paths.config),
            paths.applied.name,
        )  # fmt: skip
        created = True
    return created


async def ensure_identity(git: Git, paths: AgentPaths, pronouns: str | None) -> bool:
    """Make the applied repo's main carry the right identity file; True if it committed.

    The rebuild's "regenerate the flake" step: a manager commit that deleted or edited
    the identity file would otherwise build a wrong (or the example) agent.
    """
    wanted = identity_text(paths.name, pronouns)
    target = paths.applied / IDENTITY_FILE
    if target.is_file() and target.read_text() == wanted:
        return False
    target.write_text(wanted)
    await git.run(paths.applied, "add", IDENTITY_FILE)
    await git.run(paths.applied, "commit", "-q", "-m", "hive-c0re: restore the identity file")
    logger.warning("%s: the identity file was missing or changed; re-committed it", paths.name)
    return True


@dataclass(frozen=True)
class AgentConfig:
    """What the daemon takes from an agent's configuration."""

    model: str | None = None
    allowed_recipients: list[str] = field(default_factory=list)


_LIST_RE = re.compile(r"hyperhive\.allowedRecipients\s*=\s*\[(?P<items>[^\]]*)\]\s*;", re.S)
_MODEL_RE = re.compile(r'hyperhive\.model\s*=\s*"(?P<model>[^"$\\]*)"\s*;')
_STRING_RE = re.compile(r'"([^"$\\]*)"')


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def read_agent_nix(path: Path) -> AgentConfig:
    """Literal ``hyperhive.model`` and ``hyperhive.allowedRecipients`` from an agent.nix.

    Without Nix (the local and nspawn backends) only literal values in the attribute-path
    form are understood; anything computed is ignored. The nixos backend reads the built
    system's /etc/hyperhive/agent.json instead.
    """
    if not path.is_file():
        return AgentConfig()
    text = _strip_comments(path.read_text(errors="replace"))
    model = _MODEL_RE.search(text)
    listed = _LIST_RE.search(text)
    recipients = _STRING_RE.findall(listed.group("items")) if listed else []
    return AgentConfig(model.group("model") if model else None, recipients)


def read_agent_json(path: Path) -> AgentConfig:
    """``/etc/hyperhive/agent.json`` of a built system (docs/nixos.md)."""
    data = json.loads(path.read_text())
    recipients = data.get("allowedRecipients") or []
    model = data.get("model")
    return AgentConfig(
        model if isinstance(model, str) else None, [str(r) for r in recipients if str(r)]
    )


def deployed_record(paths: AgentPaths) -> dict[str, str]:
    """What the container was last built from: {"flake_ref", "sha"} (empty if never)."""
    record = paths.applied / ".git" / DEPLOYED_FILE
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def write_deployed_record(paths: AgentPaths, flake_ref: str, sha: str) -> None:
    """Record a successful build."""
    record = paths.applied / ".git" / DEPLOYED_FILE
    if record.parent.is_dir():
        record.write_text(json.dumps({"flake_ref": flake_ref, "sha": sha}, sort_keys=True))

"""An agent's two git repos: "proposed" (the manager edits it) and "applied" (built from).

Layout (SPEC §3, docs/persistence.md): the proposed repos live in their own tree,
``<state>/proposed/<name>/`` (bound as ``/agents`` into the manager's container, so the
manager sees ``/agents/<name>/agent.nix`` and nothing of any agent's ``claude/`` or
``state/``); the applied repos in ``<state>/applied/<name>/`` (read-only to the manager).

Seeding (SPEC §8, docs/nixos.md "The agent flake"): the daemon builds the applied repo
itself from the agent template plus ``hyperhive-identity.json`` in one initial commit, in a
private scratch directory, and renames it into place; the proposed repo is a copy of it
(or, to recreate a deleted one, a ``--no-local`` clone: no object file is shared with the
applied repo), renamed into place the same way. A proposed repo the daemon did not
create is never adopted: the applied repo, in a tree only the daemon writes, is the
record of what it created.

Everything under the proposed tree is hostile (docs/security.md, "The manager's reach and
the config repos"): git never runs inside it. A proposal is read from a snapshot: the
repo's refs and objects copied, without following a symlink, into a private directory
with a configuration of the daemon's own. Files of the applied worktree (manager-authored
content once a commit is approved) are opened without following symlinks, bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import platform
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hyperhive.agents.names import MANAGER, agent_port, validate_name
from hyperhive.agents.paths import AgentPaths
from hyperhive.errors import Conflict, InvalidRequest, Unavailable
from hyperhive.lifecycle.git import Git

logger = logging.getLogger(__name__)

IDENTITY_FILE = "hyperhive-identity.json"
AGENT_NIX = "agent.nix"
# Written next to the applied repo's objects: which flake revision the running container
# was last built from (auto_update compares it with HYPERHIVE_FLAKE_REF).
DEPLOYED_FILE = "hyperhive-deployed.json"

# Bounds on what is read from trees the manager writes.
AGENT_NIX_MAX_BYTES = 1 << 20
IDENTITY_MAX_BYTES = 1 << 16
SNAPSHOT_MAX_BYTES = 256 << 20
SNAPSHOT_MAX_FILES = 100_000
# The daemon's private scratch space (never bound into a container).
SCRATCH_DIR = ".hive-scratch"

_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NOFOLLOW_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class UnsafeFile(InvalidRequest):
    """A file in a hostile tree is a symlink, not a regular file, or too big."""


def scratch_root(state_dir: Path) -> Path:
    """The daemon's private scratch directory (created 0700)."""
    root = state_dir / SCRATCH_DIR
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if root.is_symlink() or not root.is_dir():
        raise Unavailable(f"{root} is not a directory the daemon created")
    return root


@contextlib.contextmanager
def scratch(state_dir: Path, prefix: str) -> Iterator[Path]:
    """A fresh private directory under the state dir, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=scratch_root(state_dir)))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _state_dir(paths: AgentPaths) -> Path:
    return paths.applied.parent.parent


def is_real_dir(path: Path) -> bool:
    """A directory and not a symlink to one (no component of `path` is followed last)."""
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False


def lexists(path: Path) -> bool:
    """Whether anything (a dangling symlink included) is at `path`."""
    try:
        path.lstat()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return True


def read_regular(directory: Path, name: str, limit: int) -> bytes | None:
    """The bytes of regular file `name` in `directory`; None if absent.

    Never follows a symlink (neither `directory`'s last component nor `name`), never
    blocks on a FIFO, never reads more than `limit` bytes: UnsafeFile otherwise.
    """
    try:
        dir_fd = os.open(directory, _NOFOLLOW_DIR)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UnsafeFile(f"{directory.name}/ is not a directory") from exc
    try:
        try:
            fd = os.open(name, _NOFOLLOW_FILE, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeFile(f"{name} is a symlink; commit a regular file") from exc
            raise UnsafeFile(f"{name} cannot be opened ({exc.strerror})") from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise UnsafeFile(f"{name} is not a regular file; commit a regular file")
            if info.st_size > limit:
                raise UnsafeFile(f"{name} is larger than {limit} bytes")
            data = os.read(fd, limit + 1)
            if len(data) > limit:
                raise UnsafeFile(f"{name} is larger than {limit} bytes")
            return data
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


def write_regular(directory: Path, name: str, data: bytes, mode: int = 0o644) -> None:
    """Replace `name` in `directory` by a regular file with `data`, following no symlink.

    Whatever is there (a symlink, a directory, a FIFO) is removed, never written through.
    """
    dir_fd = os.open(directory, _NOFOLLOW_DIR)
    try:
        tmp = f".{name}.hive-tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)
        fd = os.open(
            tmp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            mode,
            dir_fd=dir_fd,
        )
        try:
            os.write(fd, data)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            info = None
        if info is not None and stat.S_ISDIR(info.st_mode):
            sub = os.open(name, _NOFOLLOW_DIR, dir_fd=dir_fd)
            try:
                _empty_dir(sub)
            finally:
                os.close(sub)
            os.rmdir(name, dir_fd=dir_fd)
        # rename replaces a file or symlink itself, never what a symlink points to
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def _empty_dir(dir_fd: int) -> None:
    for entry in os.scandir(dir_fd):
        if entry.is_dir(follow_symlinks=False):
            sub = os.open(entry.name, _NOFOLLOW_DIR, dir_fd=dir_fd)
            try:
                _empty_dir(sub)
            finally:
                os.close(sub)
            os.rmdir(entry.name, dir_fd=dir_fd)
        else:
            os.unlink(entry.name, dir_fd=dir_fd)


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
    `dest` is a private scratch directory (the template is the operator's, not hostile).
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


def not_created_message(name: str) -> str:
    """Why a spawn refuses a proposed repo it finds."""
    return (
        f"/agents/{name} exists but hive-c0re did not create it (a spawn never adopts a"
        f" repo it did not make: nobody reviewed what is in it); remove /agents/{name}"
        " and request the spawn again"
    )


def check_adoptable(paths: AgentPaths) -> None:
    """Conflict if a spawn of `paths` would have to adopt a proposed repo it did not make.

    The applied repo (a tree only the daemon writes) is the record: without it, anything
    at the proposed path was put there by someone else.
    """
    if not is_real_dir(paths.applied / ".git") and lexists(paths.config):
        raise Conflict(not_created_message(paths.name))


def _rename_noreplace(src: Path, dst: Path, name: str) -> None:
    """Move a scratch directory into place; Conflict if something else is there."""
    try:
        os.rename(src, dst)  # replaces at most an empty directory, never follows a link
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise Conflict(not_created_message(name)) from exc
        raise


async def seed(git: Git, paths: AgentPaths, template: Path, pronouns: str | None) -> bool:
    """Create the applied and proposed repos if missing; True if anything was created.

    Idempotent: a revived agent keeps both repos as they are. Without an applied repo a
    proposed one is refused (check_adoptable), never adopted.
    """
    created = False
    state_dir = _state_dir(paths)
    if not is_real_dir(paths.applied / ".git"):
        check_adoptable(paths)
        paths.applied.parent.mkdir(parents=True, exist_ok=True)
        if paths.applied.is_symlink():
            paths.applied.unlink()
        elif lexists(paths.applied):
            shutil.rmtree(paths.applied)  # a daemon-owned leftover without .git
        with scratch(state_dir, f"seed-{paths.name}-") as work:
            repo = work / "repo"
            repo.mkdir()
            copy_template(template, repo)
            (repo / IDENTITY_FILE).write_text(identity_text(paths.name, pronouns))
            await git.run(repo, "init", "-q", "-b", "main")
            await git.run(repo, "add", "-A")
            await git.run(
                repo, "commit", "-q", "-m", f"hive-c0re: seed {paths.name} from the template"
            )
            fresh_copy = None
            if not lexists(paths.config):
                # The proposed repo: a plain copy of this fresh one (no shared inode).
                fresh_copy = work / "proposed"
                shutil.copytree(repo, fresh_copy, symlinks=True)
            os.rename(repo, paths.applied)
            if fresh_copy is not None:
                paths.config.parent.mkdir(parents=True, exist_ok=True)
                _rename_noreplace(fresh_copy, paths.config, paths.name)
        created = True
    if not lexists(paths.config):
        paths.config.parent.mkdir(parents=True, exist_ok=True)
        with scratch(state_dir, f"proposed-{paths.name}-") as work:
            await git.run(
                work, "clone", "-q", "--no-local", "--no-hardlinks", "--branch", "main",
                str(paths.applied), "repo",
            )  # fmt: skip
            await git.run(work / "repo", "remote", "remove", "origin")
            _rename_noreplace(work / "repo", paths.config, paths.name)
        created = True
    return created


async def ensure_identity(git: Git, paths: AgentPaths, pronouns: str | None) -> bool:
    """Make the applied repo's main carry the right identity file; True if it committed.

    The rebuild's "regenerate the flake" step: a manager commit that deleted or edited
    the identity file (or made it a symlink to a host file) would otherwise build a wrong
    (or the example) agent. The file is replaced, never written through.
    """
    wanted = identity_text(paths.name, pronouns).encode()
    try:
        current = read_regular(paths.applied, IDENTITY_FILE, IDENTITY_MAX_BYTES)
    except UnsafeFile:
        current = None
    if current == wanted:
        return False
    write_regular(paths.applied, IDENTITY_FILE, wanted)
    await git.run(paths.applied, "add", IDENTITY_FILE)
    await git.run(paths.applied, "commit", "-q", "-m", "hive-c0re: restore the identity file")
    logger.warning("%s: the identity file was missing or changed; re-committed it", paths.name)
    return True


# -- reading a proposal from the hostile proposed repo -------------------------------------------


class _Budget:
    def __init__(self) -> None:
        self.bytes = 0
        self.files = 0

    def spend(self, size: int) -> None:
        self.bytes += size
        self.files += 1
        if self.bytes > SNAPSHOT_MAX_BYTES or self.files > SNAPSHOT_MAX_FILES:
            raise Conflict(
                f"the proposed repo is larger than {SNAPSHOT_MAX_BYTES >> 20} MiB or"
                f" {SNAPSHOT_MAX_FILES} files; run `git gc` in it and request again"
            )


# Content-addressed names: a file already in the mirror under one of them is not copied
# again (and content that does not match its name is refused by the fetch's index-pack).
_IMMUTABLE = re.compile(r"[0-9a-f]{38}|pack-[0-9a-f]{40}\.(?:pack|idx|rev)")
# Optional caches that go stale under the same name: never copied.
_NOT_COPIED = frozenset({"multi-pack-index", "info"})


def _sync_tree(src_fd: int, dest: Path, budget: _Budget, skip: frozenset[str]) -> None:
    """Make `dest` hold the regular files and directories under `src_fd` (no symlink, FIFO
    or device is followed or copied); files with a content-addressed name already in
    `dest` are kept, everything else is copied again; what is gone is removed."""
    dest.mkdir(mode=0o700, exist_ok=True)
    seen: set[str] = set()
    for entry in os.scandir(src_fd):
        if entry.name in skip or entry.name.endswith(".bitmap"):
            continue
        if entry.is_dir(follow_symlinks=False):
            try:
                sub = os.open(entry.name, _NOFOLLOW_DIR, dir_fd=src_fd)
            except OSError:
                continue  # swapped for a symlink meanwhile
            seen.add(entry.name)
            try:
                _sync_tree(sub, dest / entry.name, budget, frozenset())
            finally:
                os.close(sub)
        elif entry.is_file(follow_symlinks=False):
            seen.add(entry.name)
            target = dest / entry.name
            if _IMMUTABLE.fullmatch(entry.name) and target.is_file():
                budget.spend(target.stat().st_size)
            else:
                _copy_file(src_fd, entry.name, target, budget)
    for old in os.scandir(dest):
        if old.name not in seen:
            if old.is_dir(follow_symlinks=False):
                shutil.rmtree(old.path)
            else:
                os.unlink(old.path)


def _copy_file(dir_fd: int, name: str, dest: Path, budget: _Budget) -> None:
    try:
        fd = os.open(name, _NOFOLLOW_FILE, dir_fd=dir_fd)
    except OSError:
        dest.unlink(missing_ok=True)
        return  # swapped for a symlink or removed meanwhile
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            dest.unlink(missing_ok=True)
            return
        budget.spend(info.st_size)
        tmp = dest.with_name(dest.name + ".hive-tmp")
        with tmp.open("wb") as out:
            left = info.st_size  # a file growing meanwhile is cut at the size it had
            while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
                left -= len(chunk)
                out.write(chunk)
        tmp.replace(dest)
    finally:
        os.close(fd)


SNAPSHOT_CONFIG = "[core]\n\trepositoryformatversion = 0\n\tbare = true\n"


def snapshot(proposed: Path, dest: Path) -> Path:
    """Make `dest` a bare repo with the refs and objects of the repo at `proposed`.

    No symlink is followed (the repo directory, its ``.git``, anything inside); alternates,
    the repo's own HEAD, config, hooks and info are left behind; the size is bounded.
    The copy gets a configuration of the daemon's own: git may then run in it. `dest`
    may be a previous snapshot: it is brought up to date, copying only new objects.
    """
    name = proposed.name
    try:
        repo_fd = os.open(proposed, _NOFOLLOW_DIR)
    except OSError as exc:
        raise Conflict(
            f"/agents/{name} is missing or not a directory: it must be the agent's git repo"
        ) from exc
    try:
        try:
            git_fd = os.open(".git", _NOFOLLOW_DIR, dir_fd=repo_fd)
        except OSError as exc:
            raise Conflict(
                f"/agents/{name}/.git is missing or not a directory (a symlink or a"
                " gitfile is refused): keep the repo a plain git repository"
            ) from exc
        try:
            dest.mkdir(mode=0o700, exist_ok=True)
            budget = _Budget()
            _copy_file(git_fd, "packed-refs", dest / "packed-refs", budget)
            for sub, skip in (("refs", frozenset()), ("objects", _NOT_COPIED)):
                try:
                    sub_fd = os.open(sub, _NOFOLLOW_DIR, dir_fd=git_fd)
                except OSError:
                    shutil.rmtree(dest / sub, ignore_errors=True)
                    (dest / sub).mkdir(mode=0o700)
                    continue
                try:
                    _sync_tree(sub_fd, dest / sub, budget, skip)
                finally:
                    os.close(sub_fd)
            (dest / "objects" / "pack").mkdir(exist_ok=True)
            # HEAD and config of the daemon's own (a proposal is named by its sha).
            (dest / "HEAD").write_text("ref: refs/heads/main\n")
            (dest / "config").write_text(SNAPSHOT_CONFIG)
        finally:
            os.close(git_fd)
    finally:
        os.close(repo_fd)
    return dest


_snapshot_locks: dict[str, asyncio.Lock] = {}


def mirror_path(paths: AgentPaths) -> Path:
    """The agent's persistent snapshot of its proposed repo (daemon-private)."""
    return scratch_root(_state_dir(paths)) / f"mirror-{paths.name}.git"


async def fetch_proposal(git: Git, paths: AgentPaths, ref: str) -> str | None:
    """Resolve commit `ref` of the proposed repo and fetch it into the applied repo.

    The full sha, or None if the proposed repo has no such commit. git reads only a
    private snapshot of the proposed repo, never the repo itself. The snapshot is kept
    between requests (only new objects are copied) and made off the event loop.
    """
    async with _snapshot_locks.setdefault(paths.name, asyncio.Lock()):
        copy = await asyncio.to_thread(snapshot, paths.config, mirror_path(paths))
        sha = await git.resolve_commit(copy, ref)
        if sha is None:
            return None
        await git.run(
            paths.applied, "fetch", "-q", "--no-tags", "--no-write-fetch-head", str(copy), sha
        )
    return sha


def forget_mirror(paths: AgentPaths) -> None:
    """Remove the agent's snapshot (purge)."""
    shutil.rmtree(mirror_path(paths), ignore_errors=True)


# -- what a revive deploys -----------------------------------------------------------------------


async def template_tree(git: Git, paths: AgentPaths, template: Path, pronouns: str | None) -> str:
    """The tree a fresh seed would commit, written into the applied repo's objects."""
    with scratch(_state_dir(paths), f"template-{paths.name}-") as work:
        tree = work / "tree"
        tree.mkdir()
        copy_template(template, tree)
        (tree / IDENTITY_FILE).write_text(identity_text(paths.name, pronouns))
        env = {"GIT_INDEX_FILE": str(work / "index")}
        await git.run(paths.applied, "--work-tree", str(tree), "add", "-A", env=env)
        return await git.out(paths.applied, "write-tree", env=env)


async def revive_diff(
    git: Git, paths: AgentPaths, template: Path, pronouns: str | None, sha: str
) -> str:
    """What reviving deploys: the diff from the template to kept applied commit `sha`."""
    tree = await template_tree(git, paths, template, pronouns)
    return await git.diff(paths.applied, tree, sha)


# -- migration of the old layout -----------------------------------------------------------------


def migrate_layout(state_dir: Path) -> list[str]:
    """At start-up: move ``agents/<name>/config`` to ``proposed/<name>``; the names moved.

    The old layout kept each proposed repo inside the agent's tree, which the manager's
    bind then covered. Idempotent and crash-safe (one rename per repo); never follows a
    symlink in ``agents/`` (a planted one is reported and left alone); never replaces an
    existing ``proposed/<name>``. Also breaks hard links an old seed left between a
    proposed repo's objects and the applied repo's (a local clone shares object files,
    and the manager could rewrite them in place).
    """
    proposed = state_dir / "proposed"
    proposed.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not is_real_dir(proposed):
        raise Unavailable(f"{proposed} is not a directory the daemon created")
    moved: list[str] = []
    try:
        agents_fd = os.open(state_dir / "agents", _NOFOLLOW_DIR)
    except FileNotFoundError:
        agents_fd = None
    if agents_fd is not None:
        proposed_fd = os.open(proposed, _NOFOLLOW_DIR)
        try:
            for entry in sorted(os.listdir(agents_fd)):
                if _migrate_one(agents_fd, proposed_fd, entry):
                    moved.append(entry)
        finally:
            os.close(proposed_fd)
            os.close(agents_fd)
    _unshare_applied_objects(state_dir / "applied")
    if moved:
        logger.info("moved the proposed repos of %s to %s", ", ".join(moved), proposed)
    return moved


def _migrate_one(agents_fd: int, proposed_fd: int, entry: str) -> bool:
    try:
        name = validate_name(entry) if entry != MANAGER else MANAGER
    except InvalidRequest:
        return False
    try:
        agent_fd = os.open(name, _NOFOLLOW_DIR, dir_fd=agents_fd)
    except OSError:
        logger.warning("agents/%s is not a directory (a symlink?); left alone", name)
        return False
    try:
        try:
            info = os.stat("config", dir_fd=agent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if not stat.S_ISDIR(info.st_mode):
            logger.warning("agents/%s/config is not a directory (a symlink?); not followed", name)
            return False
        if name == MANAGER:
            # The manager has no proposed repo; old daemons made an empty directory.
            with contextlib.suppress(OSError):
                os.rmdir("config", dir_fd=agent_fd)
            return False
        try:
            os.stat(name, dir_fd=proposed_fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            logger.warning(
                "both agents/%s/config and proposed/%s exist; keeping both, using proposed/",
                name,
                name,
            )
            return False
        try:
            os.rename("config", name, src_dir_fd=agent_fd, dst_dir_fd=proposed_fd)
        except OSError as exc:
            logger.warning("cannot move agents/%s/config to proposed/: %s", name, exc.strerror)
            return False
        return True
    finally:
        os.close(agent_fd)


def _unshare_applied_objects(applied_root: Path) -> None:
    """Give every hard-linked object file of an applied repo an inode of its own."""
    if not is_real_dir(applied_root):
        return
    for repo in sorted(applied_root.iterdir()):
        objects = repo / ".git" / "objects"
        if repo.is_symlink() or not is_real_dir(objects):
            continue
        for directory, _dirs, files in os.walk(objects):
            for file in files:
                path = Path(directory) / file
                try:
                    info = path.lstat()
                except OSError:
                    continue
                if file.endswith(".hive-copy"):
                    path.unlink(missing_ok=True)  # a copy a crash left behind
                elif stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
                    copy = path.with_name(file + ".hive-copy")
                    shutil.copyfile(path, copy, follow_symlinks=False)
                    os.chmod(copy, stat.S_IMODE(info.st_mode))
                    os.replace(copy, path)


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
    system's /etc/hyperhive/agent.json instead. A missing, symlinked or oversized file
    gives the empty config (the build refuses it with a reason: load_agent_nix).
    """
    try:
        source = read_regular(path.parent, path.name, AGENT_NIX_MAX_BYTES)
    except UnsafeFile:
        return AgentConfig()
    return parse_agent_nix(source.decode(errors="replace")) if source else AgentConfig()


def load_agent_nix(applied: Path) -> bytes | None:
    """The applied repo's agent.nix, read safely (None if missing; UnsafeFile if unsafe)."""
    return read_regular(applied, AGENT_NIX, AGENT_NIX_MAX_BYTES)


def parse_agent_nix(source: str) -> AgentConfig:
    """The literal values of an agent.nix's text (see read_agent_nix)."""
    text = _strip_comments(source)
    model = _MODEL_RE.search(text)
    listed = _LIST_RE.search(text)
    recipients = _STRING_RE.findall(listed.group("items")) if listed else []
    return AgentConfig(model.group("model") if model else None, recipients)


def read_agent_json(path: Path) -> AgentConfig:
    """``/etc/hyperhive/agent.json`` of a built system (docs/nixos.md), bounded.

    It is a store path (a symlink chain by design); only its size and type are checked.
    """
    real = path.resolve(strict=True)
    raw = read_regular(real.parent, real.name, IDENTITY_MAX_BYTES)
    if raw is None:
        raise FileNotFoundError(str(path))
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("agent.json is not an object")
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

"""git as a subprocess: the binary from ``HYPERHIVE_GIT``, argument vectors only.

The daemon's own commits and tags carry the identity ``hive-c0re``; the manager commits
with its own identity inside its container.

git runs only in repositories the daemon owns (the applied repos, and private scratch
copies under the state dir), never inside a proposed repo the manager can write: a repo's
own config and hooks are code (``core.fsmonitor``, hooks, filters), and the daemon is
root. Every call still gets a fixed configuration that turns those off, reads no system
or global config and allows only the local file transport (docs/security.md, "The
manager's reach and the config repos").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from pathlib import Path

from hyperhive.errors import Unavailable

logger = logging.getLogger(__name__)

SHA_RE = re.compile(r"[0-9a-f]{7,40}")

# Given on every command line: higher precedence than any repository's own config.
SAFE_CONFIG = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.pager=cat",
    "core.editor=false",
    "core.askPass=",
    "credential.helper=",
    "init.templateDir=",
    "gc.auto=0",
    "maintenance.auto=false",
    "protocol.allow=never",
    "protocol.file.allow=always",
    "submodule.recurse=false",
    "fetch.recurseSubmodules=false",
    "uploadpack.allowAnySHA1InWant=true",
)
# How much of git's own stderr an error carries (it can quote repo content).
ERROR_CHARS = 2000
DIFF_MAX_BYTES = 1024 * 1024
"""The most of a diff the daemon reads: a few KiB of repo can expand to gigabytes."""
DIFF_EXIT_SECONDS = 10.0
"""How long git may take to exit after its whole output was read."""


class GitError(Unavailable):
    """A git command failed; `message` carries git's own words."""


class Git:
    """Runs git in a repository with a fixed, non-interactive environment."""

    def __init__(self, binary: str) -> None:
        self.binary = binary

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(
            GIT_TERMINAL_PROMPT="0",
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL="/dev/null",
            GIT_ATTR_NOSYSTEM="1",
            GIT_NO_REPLACE_OBJECTS="1",
            GIT_NO_LAZY_FETCH="1",
            GIT_PROTOCOL_FROM_USER="0",
            GIT_AUTHOR_NAME="hive-c0re",
            GIT_AUTHOR_EMAIL="hive-c0re@localhost",
            GIT_COMMITTER_NAME="hive-c0re",
            GIT_COMMITTER_EMAIL="hive-c0re@localhost",
        )
        return env

    async def run(
        self,
        repo: Path,
        *args: str,
        check: bool = True,
        env: dict[str, str] | None = None,
    ) -> tuple[int, str, str]:
        """Run ``git -C repo args`` with SAFE_CONFIG; return (exit code, stdout, stderr).

        `repo` must be a repository the daemon owns (no ``safe.directory`` exception is
        made: a repo owned by another uid is refused by git itself).
        """
        argv = [self.binary]
        for item in SAFE_CONFIG:
            argv += ["-c", item]
        argv += ["-C", str(repo), *args]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**self._env(), **(env or {})},
            )
        except OSError as exc:
            raise GitError(
                f"cannot run git ({self.binary}): {exc.strerror or exc};"
                " set HYPERHIVE_GIT to the absolute path of git"
            ) from exc
        out, err = await proc.communicate()
        code = proc.returncode
        assert code is not None
        stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
        if check and code != 0:
            said = (stderr.strip() or stdout.strip())[-ERROR_CHARS:]
            raise GitError(f"git {args[0]} in {repo.name} failed: {said}")
        return code, stdout, stderr

    async def diff(self, repo: Path, old: str, new: str, limit: int = DIFF_MAX_BYTES) -> str:
        """``git diff old new`` in `repo`, at most `limit` bytes of it (then a note says so).

        The output is read as it comes and git is killed once the limit is reached, or when
        the caller is cancelled: a manager-made commit (one small blob listed many times, or
        a file of repeated lines) can make a diff of gigabytes from a repo of kilobytes.
        """
        argv = [self.binary]
        for item in SAFE_CONFIG:
            argv += ["-c", item]
        argv += ["-C", str(repo), "diff", "--no-color", "--no-ext-diff", "--no-textconv", old, new]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._env(),
        )
        assert proc.stdout is not None
        assert proc.stderr is not None
        chunks: list[bytes] = []
        size = 0
        try:
            while size < limit and (chunk := await proc.stdout.read(65536)):
                chunks.append(chunk)
                size += len(chunk)
            cut = size >= limit
            if not cut:
                async with asyncio.timeout(DIFF_EXIT_SECONDS):
                    await proc.wait()
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await asyncio.shield(proc.wait())
        text = b"".join(chunks)[:limit].decode(errors="replace")
        if cut:
            return text + f"\n… (diff cut at {limit // 1024} KiB: look at the commit in the repo)\n"
        if proc.returncode != 0:
            said = (await proc.stderr.read(ERROR_CHARS)).decode(errors="replace").strip()
            raise GitError(f"git diff in {repo.name} failed: {said}")
        return text

    async def changed_paths(
        self, repo: Path, old: str, new: str, paths: tuple[str, ...]
    ) -> list[str]:
        """Which of `paths` differ between commits `old` and `new` (bounded: only those)."""
        changed = []
        for path in paths:
            code, _, _ = await self.run(
                repo, "diff", "--quiet", "--no-ext-diff", old, new, "--", path, check=False
            )
            if code == 1:
                changed.append(path)
            elif code != 0:
                raise GitError(f"git diff in {repo.name} failed (exit {code})")
        return changed

    async def out(self, repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
        """stdout of a git command that must succeed, stripped."""
        _, stdout, _ = await self.run(repo, *args, env=env)
        return stdout.strip()

    async def resolve_commit(self, repo: Path, ref: str) -> str | None:
        """The full sha of commit `ref` in `repo`, or None if there is no such commit."""
        code, stdout, _ = await self.run(
            repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False
        )
        return stdout.strip() if code == 0 else None

    async def head(self, repo: Path, branch: str = "main") -> str:
        """The sha `branch` points at."""
        return await self.out(repo, "rev-parse", "--verify", f"refs/heads/{branch}")

    async def is_ancestor(self, repo: Path, ancestor: str, descendant: str) -> bool:
        """Whether `ancestor` is reachable from `descendant`."""
        code, _, _ = await self.run(
            repo, "merge-base", "--is-ancestor", ancestor, descendant, check=False
        )
        return code == 0

    async def tag(self, repo: Path, name: str, sha: str, message: str | None = None) -> None:
        """Create tag `name` at `sha`; annotated when `message` is given. Idempotent."""
        code, existing, _ = await self.run(
            repo, "rev-parse", "--verify", "--quiet", f"refs/tags/{name}", check=False
        )
        if code == 0 and existing.strip():
            logger.debug("tag %s already exists in %s", name, repo)
            return
        if message is None:
            await self.run(repo, "tag", name, sha)
        else:
            await self.run(repo, "tag", "-a", name, "-m", message or "(no note)", sha)

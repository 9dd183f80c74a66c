"""The ``nspawn`` backend: plain systemd-nspawn, for hosts without NixOS and for tests.

Each agent is a volatile container over the host's /usr (``-D / --volatile=yes``: a tmpfs
root, the host's /usr read-only) with the SPEC §3 layout bound in: its socket dir at
/run/hive, its claude dir at /root/.claude, its state at /state (the manager also
gets the proposed repos at /agents and, read-only, /applied). The harness runs as the
container's PID 1 and the daemon supervises the systemd-nspawn process itself.

What the harness needs outside /usr is bound read-only at the same path: the Python
prefixes (a venv and its base interpreter), every sys.path entry (an editable install),
the claude CLI's install directory, and /nix/store when there is one.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from hyperhive.errors import Unavailable
from hyperhive.lifecycle.backends import (
    AGENTS_DIR,
    APPLIED_DIR,
    CLAUDE_DIR,
    HIVE_DIR,
    STATE_DIR,
    build_from_repo,
    harness_argv,
    harness_environment,
    tail_file,
)
from hyperhive.lifecycle.conf import Bind
from hyperhive.lifecycle.names import MANAGER, container_name
from hyperhive.lifecycle.paths import AgentPaths
from hyperhive.lifecycle.repos import AgentConfig
from hyperhive.lifecycle.supervisor import Supervisor
from hyperhive.settings import Settings

logger = logging.getLogger(__name__)

# Bound read-only when present: TLS roots and user names for claude and git inside.
HOST_ETC = ("/etc/ssl", "/etc/ca-certificates", "/etc/passwd", "/etc/group")


def systemd_is_pid1() -> bool:
    """Whether systemd runs this host (else nspawn needs --register=no --keep-unit)."""
    return Path("/run/systemd/system").is_dir()


def _covered(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def read_only_paths(claude_bin: str) -> list[Path]:
    """Host paths outside /usr that the harness and claude need, minimal and sorted."""
    wanted: list[Path] = [Path(sys.prefix), Path(sys.base_prefix)]
    wanted += [Path(p) for p in sys.path if p and Path(p).is_absolute()]
    claude = Path(claude_bin)
    if claude.is_absolute() and claude.exists():
        real = claude.resolve()
        # the package directory (.../claude-code/bin/claude.exe -> .../claude-code)
        wanted.append(real.parent.parent if real.parent.name == "bin" else real.parent)
        if claude.parent != real.parent:
            wanted.append(claude.parent)
    if Path("/nix/store").is_dir():
        wanted.append(Path("/nix/store"))
    wanted += [Path(p) for p in HOST_ETC]
    existing = sorted({p.resolve() if p.is_symlink() else p for p in wanted if p.exists()})
    roots: list[Path] = []
    for path in existing:
        if _covered(path, [Path("/usr")]) or _covered(path, roots):
            continue
        roots = [r for r in roots if not _covered(r, [path])] + [path]
    return sorted(roots)


def binds_for(settings: Settings, paths: AgentPaths) -> list[Bind]:
    """The SPEC §3 bind layout of an agent's container (the nixos backend uses it too)."""
    binds = [
        Bind(str(paths.socket_dir), HIVE_DIR),
        Bind(str(paths.claude), CLAUDE_DIR),
        Bind(str(paths.state), STATE_DIR),
    ]
    if paths.name == MANAGER:
        # The proposed repos only (their own tree, never agents/: no claude/, no state/),
        # and what is deployed, read-only.
        binds.append(Bind(str(settings.state_dir / "proposed"), AGENTS_DIR))
        binds.append(Bind(str(settings.state_dir / "applied"), APPLIED_DIR, read_only=True))
    return binds


def nspawn_argv(
    binary: str,
    settings: Settings,
    paths: AgentPaths,
    env_names: Sequence[str],
    ro_paths: Sequence[Path],
    *,
    register: bool,
) -> list[str]:
    """The systemd-nspawn command line. Environment values never appear in it.

    ``--setenv=NAME`` without a value copies NAME from nspawn's own environment, so an
    API key is not visible in the host's process list.
    """
    argv = [
        binary,
        "--quiet",
        "--directory=/",
        "--volatile=yes",
        f"--machine={container_name(paths.name)}",
        "--console=pipe",
        # Without --boot nspawn would SIGKILL the payload on stop; the harness handles
        # SIGTERM by interrupting claude and exiting cleanly.
        "--kill-signal=SIGTERM",
        f"--chdir={STATE_DIR}",
    ]
    if not register:
        argv += ["--register=no", "--keep-unit"]
    argv += [b.flag() for b in binds_for(settings, paths)]
    argv += [Bind(str(p), str(p), read_only=True).flag() for p in ro_paths]
    argv += [f"--setenv={name}" for name in sorted(env_names)]
    argv += ["--", *harness_argv(sys.executable, paths)]
    return argv


class NspawnBackend:
    """systemd-nspawn containers as children of the daemon."""

    name = "nspawn"

    def __init__(self, settings: Settings, binary: str | None = None) -> None:
        self._settings = settings
        found = binary or shutil.which("systemd-nspawn")
        if found is None:
            raise Unavailable(
                "backend 'nspawn' needs systemd-nspawn (Debian/Ubuntu: apt-get install"
                " systemd-container); or set HYPERHIVE_BACKEND=local"
            )
        self._binary = found
        self._register = systemd_is_pid1()
        self._supervisor = Supervisor(
            "systemd-nspawn", settings.stop_timeout_seconds, term_twice=True
        )

    def environment(self, paths: AgentPaths) -> dict[str, str]:
        """The harness environment with container paths (also nspawn's own environment)."""
        return harness_environment(self._settings, paths, inside=True)

    def argv(self, paths: AgentPaths, env: Mapping[str, str]) -> list[str]:
        """The command line for `paths`."""
        ro = read_only_paths(env.get("HYPERHIVE_CLAUDE_BIN", ""))
        return nspawn_argv(
            self._binary, self._settings, paths, list(env), ro, register=self._register
        )

    async def build(self, paths: AgentPaths) -> AgentConfig:
        """Check the applied agent.nix (the container is the host's /usr)."""
        return await build_from_repo(paths)

    async def start(self, paths: AgentPaths) -> None:
        """Start the container with the harness as its PID 1."""
        paths.create()
        for bind in binds_for(self._settings, paths):
            Path(bind.host).mkdir(parents=True, exist_ok=True)  # nspawn refuses a missing one
        env = self.environment(paths)
        argv = self.argv(paths, env)
        # nspawn itself runs with exactly the harness environment (plus what it needs).
        own_env = {**env, "SYSTEMD_LOG_LEVEL": os.environ.get("SYSTEMD_LOG_LEVEL", "notice")}
        await self._supervisor.start(
            paths.name, argv, own_env, paths.root / "harness.log", paths.root / "nspawn.pid"
        )
        logger.info("%s: container %s started", paths.name, container_name(paths.name))

    async def stop(self, paths: AgentPaths) -> None:
        """SIGTERM nspawn (it passes SIGTERM to the harness), wait, escalate."""
        await self._supervisor.stop(paths.name)

    async def remove(self, paths: AgentPaths) -> None:
        """A volatile container leaves nothing behind once stopped."""
        await self.stop(paths)

    async def is_running(self, paths: AgentPaths) -> bool:
        """Whether the nspawn process runs."""
        return self._supervisor.running(paths.name)

    async def adopt(self, paths: AgentPaths) -> bool:
        """Take over a container a previous daemon left running."""
        return self._supervisor.adopt(
            paths.name, paths.root / "nspawn.pid", f"--machine={container_name(paths.name)}"
        )

    def leader(self, paths: AgentPaths) -> int | None:
        """The host pid of the container's PID 1 (the harness), if it runs."""
        from hyperhive.lifecycle.supervisor import children_of

        current = self._supervisor.get(paths.name)
        if current is None or not current.running():
            return None
        children = children_of(current.pid)
        return children[0] if children else None

    async def journal(self, paths: AgentPaths, lines: int) -> list[str]:
        """The tail of the container's output (the harness log)."""
        return tail_file(paths.root / "harness.log", lines)

    def stale_binds(self, paths: AgentPaths) -> bool:
        """Whether the running container was started with other binds than binds_for's
        (an older daemon's layout): it must be restarted to lose them."""
        from hyperhive.lifecycle.supervisor import _cmdline

        current = self._supervisor.get(paths.name)
        if current is None or not current.running():
            return False
        argv = _cmdline(current.pid)
        wanted = {b.flag() for b in binds_for(self._settings, paths)}
        running = {a for a in argv if a.startswith(("--bind=", "--bind-ro="))}
        return not wanted <= running

    async def close(self) -> None:
        """Stop every container."""
        await self._supervisor.close()

"""The ``nspawn`` backend: plain systemd-nspawn, for hosts without NixOS and for tests.

Each agent is a user-namespaced container (``--private-users=pick``: its root is an
unprivileged host uid, docs/security.md "User namespaces") over a small read-only root
the daemon creates (`prepare_root`: mount points and the merged-/usr symlinks, owned by
host root, so the container cannot write it), with the host's /usr bound read-only,
tmpfs at /root, /var, /tmp and /run, and the SPEC §3 layout bound in idmapped
(``:idmap``): its socket dir at /run/hive, its claude dir at /root/.claude, its state at
/state (the manager also gets the proposed repos at /agents and, read-only, /applied).
Through the idmapped binds the container's root owns what the host's root owns there and
creates files owned by host root, so the harness, the daemon's sweep and the manager's git work see
the same owners as before. The harness runs as the container's PID 1 and the daemon
supervises the systemd-nspawn process itself.

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

from hyperhive.agents.names import container_name
from hyperhive.agents.paths import AgentPaths
from hyperhive.errors import Unavailable
from hyperhive.lifecycle.backends import build_from_repo, tail_file, verify_binds
from hyperhive.lifecycle.conf import Bind
from hyperhive.lifecycle.harness_env import harness_argv, harness_environment
from hyperhive.lifecycle.mounts import STATE_DIR, binds_for
from hyperhive.lifecycle.repos import AgentConfig
from hyperhive.lifecycle.supervisor import Supervisor
from hyperhive.settings import Settings

logger = logging.getLogger(__name__)

# Bound read-only when present: TLS roots and user names for claude and git inside.
HOST_ETC = ("/etc/ssl", "/etc/ca-certificates", "/etc/passwd", "/etc/group")
# tmpfs over the read-only root: what claude writes outside its binds (~/.claude.json
# with HOME=/root, /var/tmp). nspawn mounts /tmp, /run, /dev, /proc and /sys itself.
TMPFS_DIRS = ("/root", "/var")
NSPAWN_MOUNTS = ("/tmp", "/run", "/dev", "/proc", "/sys")
# Directories of the small root, and empty files nspawn binds the host's over
# (--resolv-conf=auto, --timezone=auto: on a read-only root they must exist).
ROOT_DIRS = ("/usr", "/etc", STATE_DIR, *TMPFS_DIRS, *NSPAWN_MOUNTS)
ROOT_FILES = ("/etc/resolv.conf", "/etc/localtime")
# Top-level symlinks into /usr of a merged-/usr host, recreated in the small root.
USR_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


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
        if claude.parent.name == ".bin":
            # npm's layout: .bin/claude -> ../<package>/...: bind node_modules as named,
            # so the relative link resolves inside the container (a symlinked cache dir)
            wanted.append(claude.parent.parent)
        elif claude.parent != real.parent:
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


def container_python() -> str:
    """This interpreter as the container sees it: under the resolved prefix, which is what
    read_only_paths binds (a venv reached through a symlink is bound at its target)."""
    exe, prefix = Path(sys.executable), Path(sys.prefix)
    if not exe.is_relative_to(prefix):
        return str(exe)
    return str(prefix.resolve() / exe.relative_to(prefix))


def container_root(settings: Settings, name: str) -> Path:
    """The small root directory of `name`'s container (daemon-owned, never bound)."""
    return settings.state_dir / "roots" / name


def _mount_point_needed(container_path: str) -> bool:
    """Whether nspawn needs `container_path` to exist in the read-only root."""
    path = Path(container_path)
    return not _covered(path, [Path(p) for p in (*TMPFS_DIRS, *NSPAWN_MOUNTS)])


def prepare_root(root: Path, binds: Iterable[Bind], ro_paths: Iterable[Path]) -> Path:
    """Create (idempotently) the small root of a container and return it.

    Owned by host root (nobody inside the user namespace) and mounted read-only, so the
    container can neither write it nor keep anything in it between starts. It holds only
    what nspawn needs on a read-only root: the mount points of the binds (a directory or
    an empty file, as the source is) and the host's top-level symlinks into /usr.
    """
    root.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    root.mkdir(mode=0o755, exist_ok=True)
    root.chmod(0o755)
    for name in ROOT_DIRS:
        (root / name.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for name in ROOT_FILES:
        (root / name.lstrip("/")).touch(exist_ok=True)
    for name in USR_LINKS:
        host, link = Path("/") / name, root / name
        if host.is_symlink() and not link.is_symlink():
            link.symlink_to(os.readlink(host))
    wanted = [(b.host, b.container) for b in binds] + [(str(p), str(p)) for p in ro_paths]
    for source, target in wanted:
        if not _mount_point_needed(target) or Path(target) == Path("/usr"):
            continue
        point = root / os.path.normpath(target).lstrip("/")  # no ".." out of the root
        if Path(source).is_dir():
            point.mkdir(parents=True, exist_ok=True)
        else:
            point.parent.mkdir(parents=True, exist_ok=True)
            point.touch(exist_ok=True)
    return root


def nspawn_argv(
    binary: str,
    settings: Settings,
    paths: AgentPaths,
    env_names: Sequence[str],
    ro_paths: Sequence[Path],
    *,
    root: Path,
    register: bool,
) -> list[str]:
    """The systemd-nspawn command line. Environment values never appear in it.

    ``--setenv=NAME`` without a value copies NAME from nspawn's own environment, so an
    API key is not visible in the host's process list. `root` is the container's small
    root (`prepare_root`); /usr and `ro_paths` are bound read-only over it.
    """
    argv = [
        binary,
        "--quiet",
        f"--directory={root}",
        "--read-only",
        # A user namespace: container uid 0 is an unprivileged host uid. The root stays
        # host-owned (ownership=off: chown cannot be combined with --read-only).
        "--private-users=pick",
        "--private-users-ownership=off",
        f"--machine={container_name(paths.name)}",
        "--console=pipe",
        # Without --boot nspawn would SIGKILL the payload on stop; the harness handles
        # SIGTERM by interrupting claude and exiting cleanly.
        "--kill-signal=SIGTERM",
        f"--chdir={STATE_DIR}",
    ]
    if not register:
        argv += ["--register=no", "--keep-unit"]
    argv += [f"--tmpfs={path}" for path in TMPFS_DIRS]
    argv += [Bind("/usr", "/usr", read_only=True).flag()]
    argv += [b.flag(idmap=True) for b in binds_for(settings, paths)]
    argv += [Bind(str(p), str(p), read_only=True).flag() for p in ro_paths]
    argv += [f"--setenv={name}" for name in sorted(env_names)]
    argv += ["--", *harness_argv(container_python(), paths)]
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
        """The command line for `paths` (its small root is created here if missing)."""
        ro = read_only_paths(env.get("HYPERHIVE_CLAUDE_BIN", ""))
        binds = binds_for(self._settings, paths)
        root = prepare_root(container_root(self._settings, paths.name), binds, ro)
        return nspawn_argv(
            self._binary, self._settings, paths, list(env), ro, root=root, register=self._register
        )

    async def build(self, paths: AgentPaths) -> AgentConfig:
        """Check the applied agent.nix (the container is the host's /usr)."""
        return await build_from_repo(paths)

    async def start(self, paths: AgentPaths) -> None:
        """Start the container with the harness as its PID 1."""
        paths.create()
        verify_binds(paths, binds_for(self._settings, paths))
        env = self.environment(paths)
        argv = self.argv(paths, env)
        # nspawn itself runs with exactly the harness environment (plus what it needs).
        own_env = {**env, "SYSTEMD_LOG_LEVEL": os.environ.get("SYSTEMD_LOG_LEVEL", "notice")}
        await self._supervisor.start(
            paths.name, argv, own_env, paths.harness_log, paths.pidfile("nspawn")
        )
        logger.info("%s: container %s started", paths.name, container_name(paths.name))

    async def stop(self, paths: AgentPaths) -> None:
        """SIGTERM nspawn (it passes SIGTERM to the harness), wait, escalate."""
        await self._supervisor.stop(paths.name)

    async def remove(self, paths: AgentPaths) -> None:
        """Stop it; its small root goes too (read-only to it: nothing of its own is lost)."""
        await self.stop(paths)
        shutil.rmtree(container_root(self._settings, paths.name), ignore_errors=True)

    async def is_running(self, paths: AgentPaths) -> bool:
        """Whether the nspawn process runs."""
        return self._supervisor.running(paths.name)

    async def adopt(self, paths: AgentPaths) -> bool:
        """Take over a container a previous daemon left running."""
        paths.forget_legacy_files()
        return self._supervisor.adopt(
            paths.name, paths.pidfile("nspawn"), f"--machine={container_name(paths.name)}"
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
        return tail_file(paths.harness_log, lines)

    def stale_binds(self, paths: AgentPaths) -> bool:
        """Whether the running container was started with other binds than binds_for's
        (an older daemon's layout): it must be restarted to lose them."""
        from hyperhive.lifecycle.supervisor import _cmdline

        current = self._supervisor.get(paths.name)
        if current is None or not current.running():
            return False
        argv = _cmdline(current.pid)
        wanted = {b.flag(idmap=True) for b in binds_for(self._settings, paths)}
        running = {a for a in argv if a.startswith(("--bind=", "--bind-ro="))}
        return not wanted <= running

    async def close(self) -> None:
        """Stop every container."""
        await self._supervisor.close()

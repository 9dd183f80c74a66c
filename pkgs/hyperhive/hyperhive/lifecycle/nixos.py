"""The ``nixos`` backend: nixos-container, with the conf rewriting of SPEC §10.

Per agent container ``h-<name>``:
- build/create: ``nixos-container create h-<name> --flake <applied>#h-<name>
  [--override-input hyperhive <ref>] --no-write-lock-file`` the first time, ``update``
  with the same flags afterwards (both build the flake; a failing build leaves the old
  system in place);
- the conf file is rewritten after each (binds, network variables, PRIVATE_NETWORK=0);
- resource limits go into a drop-in for ``container@h-<name>.service``;
- start/stop/status/destroy are the CLI's verbs; logs come from ``journalctl -M``.
The manager's ``hm1nd`` is declarative (its conf belongs to NixOS): it is only started
and stopped, never created, rewritten or destroyed.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from hyperhive import safefs
from hyperhive.agents.names import MANAGER, container_name
from hyperhive.agents.paths import AgentPaths
from hyperhive.errors import Conflict, Unavailable
from hyperhive.lifecycle import conf
from hyperhive.lifecycle.backends import (
    JOURNAL_MAX_LINES,
    BuildFailed,
    build_tail,
    verify_binds,
)
from hyperhive.lifecycle.mounts import binds_for
from hyperhive.lifecycle.repos import AgentConfig, read_agent_json
from hyperhive.settings import Settings

logger = logging.getLogger(__name__)

CONF_DIR = Path("/etc/nixos-containers")
PROFILE_DIR = Path("/nix/var/nix/profiles/per-container")
# /etc/systemd/system is read-only on NixOS; runtime drop-ins live here.
DROPIN_DIR = Path("/run/systemd/system")


class NixosBackend:
    """nixos-container through its CLI, argument vectors only."""

    name = "nixos"

    def __init__(
        self,
        settings: Settings,
        *,
        binary: str = "nixos-container",
        conf_dir: Path = CONF_DIR,
        profile_dir: Path = PROFILE_DIR,
        dropin_dir: Path = DROPIN_DIR,
        systemctl: str = "systemctl",
        journalctl: str = "journalctl",
    ) -> None:
        self._settings = settings
        self.binary = binary
        self.conf_dir = conf_dir
        self.profile_dir = profile_dir
        self.dropin_dir = dropin_dir
        self.systemctl = systemctl
        self.journalctl = journalctl

    async def _run(self, *argv: str, cwd: Path | None = None) -> tuple[int, str]:
        """Run a command; (exit code, stdout+stderr)."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=str(cwd) if cwd else None,
            )
        except OSError as exc:
            raise Unavailable(
                f"cannot run {argv[0]}: {exc.strerror or exc}; the nixos backend needs"
                " nixos-container (boot.enableContainers) on the daemon's PATH"
            ) from exc
        out, _ = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode(errors="replace")

    async def _must(self, *argv: str) -> str:
        code, out = await self._run(*argv)
        if code != 0:
            detail = safefs.bounded(out.strip(), 500)
            raise Unavailable(f"{' '.join(argv[:3])} failed (exit {code}): {detail}")
        return out

    def conf_path(self, paths: AgentPaths) -> Path:
        """/etc/nixos-containers/<container>.conf."""
        return self.conf_dir / f"{container_name(paths.name)}.conf"

    def flake_args(self, paths: AgentPaths) -> list[str]:
        """--flake and the flags nixos-container passes through to `nix build`."""
        c = container_name(paths.name)
        args = ["--flake", f"{paths.applied}#{c}"]
        if self._settings.flake_ref:
            args += ["--override-input", "hyperhive", self._settings.flake_ref]
        return [*args, "--no-write-lock-file"]

    async def build(self, paths: AgentPaths) -> AgentConfig:
        """create (first time) or update from the applied repo, then rewrite the conf."""
        c = container_name(paths.name)
        if paths.name == MANAGER:
            return self._built_config(c)
        verb = "update" if self.conf_path(paths).exists() else "create"
        # nixos-container builds a flake with `nix build -o <system-path>.tmp`, and with
        # no --system-path that is `.tmp` in the working directory: give it a scratch one.
        scratch = self._settings.state_dir / "build" / c
        safefs.ensure_dir(self._settings.state_dir, scratch)
        if verb == "update":
            # Rewrite first: a manual rebuild must repair a hand-edited conf even when
            # the build then fails.
            await self.write_conf(paths)
        code, out = await self._run(self.binary, verb, c, *self.flake_args(paths), cwd=scratch)
        if code != 0:
            raise BuildFailed(
                f"building {c} failed (nixos-container {verb}, exit {code})", build_tail(out)
            )
        await self.write_conf(paths)
        return self._built_config(c)

    def _built_config(self, container: str) -> AgentConfig:
        # The allow-list is what was built and approved, never what the container says.
        agent_json = self.profile_dir / container / "system" / "etc" / "hyperhive" / "agent.json"
        try:
            return read_agent_json(agent_json)
        except (OSError, ValueError) as exc:
            logger.warning("%s: cannot read %s (%s); no allow-list", container, agent_json, exc)
            return AgentConfig()

    async def write_conf(self, paths: AgentPaths) -> None:
        """Rewrite the conf file's EXTRA_NSPAWN_FLAGS and network lines; the drop-in.

        The bind sources are checked first (real directories the daemon made, no link on
        the way): a conf never names a swapped state/ or claude/. The conf is replaced
        atomically without following a link.
        """
        path = self.conf_path(paths)
        binds = binds_for(self._settings, paths)
        verify_binds(paths, binds)
        try:
            raw = safefs.read_bytes(path.parent, path, 1024 * 1024)
        except FileNotFoundError:
            raw = None
        text = raw.decode(errors="replace") if raw is not None else ""
        new = conf.rewrite(text, binds)
        if new != text:
            safefs.write_atomic(path.parent, path, new.encode(), 0o644)
        await self._write_dropin(paths)

    def dropin_path(self, paths: AgentPaths) -> Path:
        """The drop-in with resource limits."""
        unit = f"container@{container_name(paths.name)}.service"
        return self.dropin_dir / f"{unit}.d" / "hyperhive-limits.conf"

    async def _write_dropin(self, paths: AgentPaths) -> None:
        body = conf.dropin(self._settings.agent_memory_max, self._settings.agent_cpu_quota)
        target = self.dropin_path(paths)
        try:
            raw = safefs.read_bytes(target.parent, target, 64 * 1024)
        except FileNotFoundError:
            raw = None
        current = raw.decode(errors="replace") if raw is not None else None
        if body == current:
            return
        if body is None:
            safefs.unlink(target.parent, target)
        else:
            self.dropin_dir.mkdir(parents=True, exist_ok=True)  # host-only
            safefs.ensure_dir(self.dropin_dir, target.parent)
            safefs.write_atomic(target.parent, target, body.encode(), 0o644)
        await self._must(self.systemctl, "daemon-reload")

    async def start(self, paths: AgentPaths) -> None:
        """nixos-container start, once the bind sources are checked (see write_conf) and the
        conf has our binds and the user namespace (a conf from before an upgrade, or edited by
        hand, is rewritten)."""
        verify_binds(paths, binds_for(self._settings, paths))
        if paths.name != MANAGER and self.conf_path(paths).exists():
            await self.write_conf(paths)
        await self._must(self.binary, "start", container_name(paths.name))

    async def stop(self, paths: AgentPaths) -> None:
        """nixos-container stop (a clean shutdown; waits until stopped)."""
        if await self.is_running(paths):
            await self._must(self.binary, "stop", container_name(paths.name))

    async def remove(self, paths: AgentPaths) -> None:
        """nixos-container destroy, then the drop-in."""
        if paths.name == MANAGER:
            raise Conflict("hm1nd is declared in the host configuration and cannot be destroyed")
        await self._must(self.binary, "destroy", container_name(paths.name))
        dropin = self.dropin_path(paths)
        if dropin.exists():
            shutil.rmtree(dropin.parent, ignore_errors=True)
            await self._must(self.systemctl, "daemon-reload")

    async def status(self, paths: AgentPaths) -> str:
        """nixos-container status: up, down or gone."""
        code, out = await self._run(self.binary, "status", container_name(paths.name))
        words = out.split()
        if "gone" in words or (code != 0 and "does not exist" in out):
            return "gone"
        return "up" if "up" in words else "down"

    async def is_running(self, paths: AgentPaths) -> bool:
        """Whether the container is up."""
        return await self.status(paths) == "up"

    async def adopt(self, paths: AgentPaths) -> bool:
        """Containers are systemd units: nothing to adopt, only to look at."""
        return await self.is_running(paths)

    async def journal(self, paths: AgentPaths, lines: int) -> list[str]:
        """journalctl -M <container> -n N --no-pager."""
        lines = max(1, min(lines, JOURNAL_MAX_LINES))
        code, out = await self._run(
            self.journalctl, "-M", container_name(paths.name), "-n", str(lines), "--no-pager"
        )
        return [safefs.bounded(line, 2000) for line in out.splitlines()[-lines:]]

    async def close(self) -> None:
        """Containers outlive the daemon (RuntimeDirectoryPreserve keeps their sockets)."""

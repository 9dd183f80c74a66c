"""A recording stand-in for ``nixos-container``, ``systemctl`` and ``journalctl``, tests only.

nixos-container cannot run here (no NixOS, no Nix store). This stand-in is started under
those three names (wrapper scripts on PATH) and

- records every invocation (argv and working directory) as a JSON line in
  ``$STANDIN_LOG``;
- keeps the real tool's files under ``$STANDIN_ROOT``: ``etc/nixos-containers/<c>.conf``
  written exactly as ``nixos-container create`` writes it (PRIVATE_NETWORK=1, a
  10.233.N.1/.2 address pair, HOST_BRIDGE, HOST_PORT, AUTO_START, FLAKE), and
  ``profiles/<c>/system/etc/hyperhive/agent.json`` as a built system would carry it;
- answers like the real script: ``status`` prints up/down/gone, ``destroy`` of a missing
  container succeeds, other verbs on a missing one fail with "does not exist";
- "builds" a flake by checking its agent.nix with ``nix-instantiate --parse`` (a syntax
  error fails the build with Nix's message, as ``nix build`` would) and by writing
  agent.json from the identity file and the literal allowedRecipients.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(os.environ.get("STANDIN_ROOT", "/nonexistent"))
CONF_DIR = ROOT / "etc" / "nixos-containers"
PROFILES = ROOT / "profiles"
RUNNING = ROOT / "running"


def record(tool: str, argv: list[str]) -> None:
    log = os.environ.get("STANDIN_LOG")
    if log:
        with open(log, "a") as out:
            out.write(json.dumps({"tool": tool, "argv": argv, "cwd": os.getcwd()}) + "\n")


def fail(message: str) -> None:
    print(f"nixos-container: {message}", file=sys.stderr)
    sys.exit(1)


def build(name: str, flake: str) -> None:
    source, _, attr = flake.partition("#")
    if attr != name:
        fail(f"flake attribute {attr!r} is not the container {name!r}")
    repo = Path(source)
    agent_nix = repo / "agent.nix"
    checker = shutil.which("nix-instantiate")
    if checker:
        result = subprocess.run(
            [checker, "--store", "dummy://", "--parse", str(agent_nix)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr, end="")
            fail(f"failed to build container from flake '{source}'")
    identity = json.loads((repo / "hyperhive-identity.json").read_text())
    text = agent_nix.read_text()
    listed = re.search(r"hyperhive\.allowedRecipients\s*=\s*\[([^\]]*)\]", text)
    recipients = re.findall(r'"([^"]*)"', listed.group(1)) if listed else []
    system = PROFILES / name / "system" / "etc" / "hyperhive"
    system.mkdir(parents=True, exist_ok=True)
    (system / "agent.json").write_text(
        json.dumps({**identity, "model": "haiku", "allowedRecipients": recipients})
    )


def nixos_container(argv: list[str]) -> None:
    if not argv:
        fail("no action specified")
    action, rest = argv[0], argv[1:]
    flake = None
    if "--flake" in rest:
        flake = rest[rest.index("--flake") + 1]
    if not rest:
        fail("no container name specified")
    name = rest[0]
    conf = CONF_DIR / f"{name}.conf"
    if action == "create":
        if conf.exists():
            fail(f"container ‘{name}’ already exists")
        if len(name) > 11:
            fail(f"container name ‘{name}’ is too long")
        CONF_DIR.mkdir(parents=True, exist_ok=True)
        n = len(list(CONF_DIR.glob("*.conf"))) + 1
        lines = [
            "PRIVATE_NETWORK=1",
            f"HOST_ADDRESS=10.233.{n}.1",
            f"LOCAL_ADDRESS=10.233.{n}.2",
            "HOST_BRIDGE=",
            "HOST_PORT=",
            "AUTO_START=0",
        ]
        if flake:
            lines.append(f"FLAKE={flake.partition('#')[0]}")
        conf.write_text("\n".join(lines) + "\n")
        print(f"host IP is 10.233.{n}.1, container IP is 10.233.{n}.2", file=sys.stderr)
        if flake:
            build(name, flake)
        return
    if not conf.exists():
        if action == "destroy":
            return
        if action == "status":
            print("gone")
        fail(f"container ‘{name}’ does not exist")
    running = RUNNING / name
    if action == "update":
        if flake is None:
            match = re.search(r"^FLAKE=(.*)$", conf.read_text(), re.M)
            flake = f"{match.group(1)}#{name}" if match else None
        if flake:
            build(name, flake)
        if running.exists():
            print("reloading container...", file=sys.stderr)
    elif action == "start":
        RUNNING.mkdir(parents=True, exist_ok=True)
        running.touch()
    elif action == "stop":
        running.unlink(missing_ok=True)
    elif action == "status":
        print("up" if running.exists() else "down")
    elif action == "destroy":
        if not os.access(conf, os.W_OK):
            fail(
                "cannot destroy declarative container"
                " (remove it from your configuration.nix instead)"
            )
        running.unlink(missing_ok=True)
        shutil.rmtree(PROFILES / name, ignore_errors=True)
        conf.unlink()
    else:
        fail(f"unknown action ‘{action}’")


def main() -> None:
    tool = Path(sys.argv[1]).name
    argv = sys.argv[2:]
    record(tool, argv)
    if tool == "nixos-container":
        nixos_container(argv)
    elif tool == "journalctl":
        machine = argv[argv.index("-M") + 1]
        count = int(argv[argv.index("-n") + 1])
        for i in range(count):
            print(f"Nov 21 12:00:0{i % 10} {machine} hive-ag3nt[1]: line {i}")
    # systemctl daemon-reload: nothing to do


if __name__ == "__main__":
    main()

# The hyperhive Python application (hive-c0re, hive-ag3nt, hive-m1nd, hive-forge) from
# the repository's one Poetry project.
{
  lib,
  pkgs,
  python3,
  poetry2nix,
}:
let
  p2n = poetry2nix.lib.mkPoetry2Nix { inherit pkgs; };
  root = ../..;
in
p2n.mkPoetryApplication {
  projectDir = root;
  # Only what the wheel is built from: a change to docs, tests or Nix files must not
  # rebuild the package (and with it every container).
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      (root + "/pyproject.toml")
      (root + "/poetry.lock")
      # pyproject.toml names it as the readme; poetry-core refuses to build without it.
      (root + "/README.md")
      ./hyperhive
      ../hive-forge/hive_forge
    ];
  };
  python = python3;
  # Wheels, not sdists: the sdists of pydantic-core, rpds-py and cryptography (Rust) need
  # build systems poetry2nix has no override for at our locked versions. The lock holds
  # a manylinux wheel of every compiled package for x86_64 and aarch64 (checked by
  # checks/poetry-lock.nix), and poetry2nix patches their ELF files.
  preferWheels = true;
  # poetry2nix's defaults, the packages the lock names but Linux never installs, and
  # claude-agent-sdk from its sdist (see poetry-overrides.nix).
  overrides = (import ./poetry-overrides.nix).overrides { inherit p2n pkgs; };
  # The test suite runs as its own flake check (checks.<system>.pytest) with the dev
  # group; the package itself carries only the runtime dependencies.
  checkGroups = [ ];

  meta = {
    description = "Run a swarm of Claude Code agents on one NixOS host";
    license = lib.licenses.mit;
    mainProgram = "hive-c0re";
    platforms = lib.platforms.linux;
  };
}

# The hyperhive Python application (hive-c0re, hive-ag3nt, hive-m1nd, hive-forge) from
# the repository's one Poetry project.
{
  lib,
  pkgs,
  python3,
  poetry2nix,
}:
let
  inherit (poetry2nix.lib.mkPoetry2Nix { inherit pkgs; }) mkPoetryApplication defaultPoetryOverrides;
  root = ../..;
in
mkPoetryApplication {
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
  # Wheels, not sdists: pydantic-core (Rust) and friends would otherwise need poetry2nix
  # build overrides matching each locked version; the manylinux wheels exist for both
  # x86_64-linux and aarch64-linux and poetry2nix patches their ELF files.
  preferWheels = true;
  # Except claude-agent-sdk: its wheels bundle a claude executable (Bun); the harness runs
  # the claude the project pins (cli_path), so the SDK is built from its sdist, which has
  # no binary.
  overrides = defaultPoetryOverrides.extend (
    _final: prev: {
      claude-agent-sdk = (prev.claude-agent-sdk.override { preferWheel = false; }).overridePythonAttrs (
        old: { nativeBuildInputs = (old.nativeBuildInputs or [ ]) ++ [ prev.hatchling ]; }
      );
    }
  );
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

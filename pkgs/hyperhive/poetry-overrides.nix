# What poetry2nix needs to be told about our poetry.lock, shared by the package
# (pkgs/hyperhive), the dev shell and the pytest check (flake.nix). Pure Nix: the
# lock guard (checks/poetry-lock.nix) and tests/nix read `absent` without nixpkgs.
{
  # Locked, but never installed on Linux. poetry2nix ignores the markers of a
  # dependency given as a list of constraints (mcp: `pywin32 = [ {version, markers =
  # "sys_platform == 'win32' ..."}, ... ]`) and would build these for every platform;
  # the lock holds no Linux file for them, so evaluation throws "Missing suitable
  # source/wheel file entry". They become null in the package set, as poetry2nix does
  # with packages whose own markers exclude the platform.
  absent = [ "pywin32" ];

  # The override for mkPoetryApplication/mkPoetryEnv: poetry2nix's defaults plus `absent`,
  # and claude-agent-sdk built from its sdist: its wheels bundle a claude executable
  # (Bun); the harness runs the claude the project pins (cli_path), and the sdist has no
  # binary.
  overrides =
    p2n:
    p2n.defaultPoetryOverrides.extend (
      _final: prev:
      builtins.listToAttrs (
        map (name: {
          inherit name;
          value = null;
        }) (import ./poetry-overrides.nix).absent
      )
      // {
        claude-agent-sdk =
          (prev.claude-agent-sdk.override { preferWheel = false; }).overridePythonAttrs
            (old: {
              nativeBuildInputs = (old.nativeBuildInputs or [ ]) ++ [ prev.hatchling ];
            });
      }
    );
}

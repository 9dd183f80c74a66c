# The package's pytest suite as a flake check, in the build sandbox.
#
# claude comes from nixpkgs-unstable here (the npm pin in claude-version is what CI uses);
# the tests drive it against their local API stand-in, never the network. The sandbox
# has no Chromium and no systemd-nspawn: suites that need those must skip themselves
# when CI is unset (CI runs them on a full machine). tests/nix/ runs here for real:
# nix-instantiate comes from pkgs.nix and evaluates against a dummy store.
{
  runCommand,
  git,
  nix,
  hyperhive,
  claude-code,
  devEnv,
  src,
}:
runCommand "hyperhive-pytest"
  {
    nativeBuildInputs = [
      devEnv
      # The console scripts (hive-c0re, hive-ag3nt, ...) that tests start as processes.
      hyperhive
      git
      nix
    ];
    HYPERHIVE_TEST_CLAUDE = "${claude-code}/bin/claude";
  }
  ''
    cp -r --no-preserve=mode,ownership ${src} source
    cd source
    export HOME=$TMPDIR
    # Prepend: the Python setup hooks put hyperhive's dependencies on PYTHONPATH already.
    export PYTHONPATH="$PWD/pkgs/hyperhive:$PWD/pkgs/hive-forge''${PYTHONPATH:+:$PYTHONPATH}"
    pytest -q -p no:cacheprovider -n auto tests
    touch $out
  ''

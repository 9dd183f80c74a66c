# The package's pytest suite as a flake check, in the build sandbox.
#
# The sandbox has no Chromium, no systemd-nspawn and no npm claude: suites that need one
# skip themselves when CI is unset (CI runs them on a full machine, see
# .ci/ and docs/nixos.md). tests/nix/ runs here for real: nix-instantiate comes from
# pkgs.nix and evaluates against a dummy store.
{
  runCommand,
  git,
  nix,
  hyperhive,
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
  }
  ''
    cp -r --no-preserve=mode,ownership ${src} source
    cd source
    export HOME=$TMPDIR
    export PYTHONPATH=$PWD/pkgs/hyperhive:$PWD/pkgs/hive-forge
    pytest -q -p no:cacheprovider -n auto tests
    touch $out
  ''

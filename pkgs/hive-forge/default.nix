# hive-forge, the Forgejo CLI every agent container gets.
#
# Why this is not a second poetry2nix build: the repository is one Poetry project (one
# pyproject.toml, one poetry.lock) whose wheel contains both the `hyperhive` and the
# `hive_forge` packages and all four console scripts. A separate build would need its
# own pyproject (breaking "one Poetry project") or would build the same wheel twice.
# So this derivation re-exports the `hive-forge` script of the one hyperhive build and
# nothing else: `nix run .#hive-forge` and environment.systemPackages get only that
# binary on PATH. The closure is hyperhive's, which every container carries anyway for
# its harness, so it costs nothing there.
{
  lib,
  runCommand,
  hyperhive,
}:
runCommand "hive-forge-${hyperhive.version}"
  {
    passthru.unwrapped = hyperhive;
    meta = {
      description = "CLI for the hive's Forgejo instance (issues, comments, labels, pull requests)";
      license = lib.licenses.mit;
      mainProgram = "hive-forge";
      platforms = lib.platforms.linux;
    };
  }
  ''
    mkdir -p $out/bin
    ln -s ${lib.getExe' hyperhive "hive-forge"} $out/bin/hive-forge
  ''

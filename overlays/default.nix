# The package overlay: pkgs.hyperhive and pkgs.hive-forge, built with poetry2nix from the
# repository's one pyproject.toml + poetry.lock against the nixpkgs it is applied to.
{ poetry2nix }:
final: prev: {
  hyperhive = final.callPackage ../pkgs/hyperhive { inherit poetry2nix; };
  hive-forge = final.callPackage ../pkgs/hive-forge { };
}

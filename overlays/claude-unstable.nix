# claude-code from nixpkgs-unstable.
#
# claude-code moves fast and lags in stable nixpkgs, and it is unfree. This overlay takes
# it from nixpkgs-unstable, instantiated with an allowUnfreePredicate that admits
# claude-code and nothing else (the one predicate in modules/lib.nix), so using the
# overlay never requires allowing every unfree package anywhere.
{ nixpkgs-unstable }:
final: prev:
let
  hlib = import ../modules/lib.nix;
  unstable = import nixpkgs-unstable {
    inherit (prev.stdenv.hostPlatform) system;
    config.allowUnfreePredicate = hlib.allowUnfreePredicate;
  };
in
{
  inherit (unstable) claude-code;
}

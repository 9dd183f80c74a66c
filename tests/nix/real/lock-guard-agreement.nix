# Does our pure lock guard (checks/wheel-names.nix) accept exactly the wheel names the
# REAL poetry2nix can parse? Needs poetry2nix's and nixpkgs lib's sources (see
# docs/nixos.md, "Evaluating against the real poetry2nix and nixpkgs lib"). Not in CI.
#
# For every wheel name in `lockFile` it asks the real pyproject.nix (vendored in
# poetry2nix) to parse the name and to judge every platform tag for x86_64/aarch64 glibc
# and musl Linux (with libc versions high enough that every arch lookup is reached), and
# compares "does not throw" with our guard's verdict. `disagree` must be empty; where
# the real parser is lazier than the guard, the guard is allowed to be stricter only if
# that is listed in `stricter` (none today).
#
#   nix-instantiate --eval --strict --json --store dummy:// tests/nix/real/lock-guard-agreement.nix \
#     --arg poetry2nix /path/to/poetry2nix --arg nixpkgsLib /path/to/nixpkgs.lib \
#     [--arg lockFile /path/to/other/poetry.lock]
{
  poetry2nix,
  nixpkgsLib,
  lockFile ? ../../../poetry.lock,
}:
let
  lib = import (nixpkgsLib + "/lib");
  pyproject-nix = import (poetry2nix + "/vendor/pyproject.nix") { inherit lib; };
  inherit (pyproject-nix.lib) pypa;
  guard = import ../../../checks/wheel-names.nix;

  targets = [
    {
      platform = lib.systems.elaborate "x86_64-linux";
      libc = {
        pname = "glibc";
        version = "99.0";
      };
    }
    {
      platform = lib.systems.elaborate "aarch64-linux";
      libc = {
        pname = "glibc";
        version = "99.0";
      };
    }
    {
      platform = lib.systems.elaborate "x86_64-unknown-linux-musl";
      libc = {
        pname = "musl";
        version = "99.0";
      };
    }
    {
      platform = lib.systems.elaborate "aarch64-unknown-linux-musl";
      libc = {
        pname = "musl";
        version = "99.0";
      };
    }
  ];

  # tryEval catches `throw` and `assert`, not a missing attribute: pep600/pep656 look the
  # tag's arch up in pep599's table with `.${arch}`, so that one step is asked of the
  # real table (and the real legacy-alias map) with `?` before the real check runs.
  inherit (pyproject-nix.lib) pep599 pep600;
  archKnown =
    tag:
    let
      tag' = pep600.legacyAliases.${tag} or tag;
      m = builtins.match "(many|musl)linux_([0-9]+)_([0-9]+)_(.*)" tag';
    in
    m == null || pep599.manyLinuxTargetMachines ? ${builtins.elemAt m 3};
  realAccepts =
    name:
    let
      parsed = pypa.parseWheelFileName name;
      verdicts = lib.concatMap (
        t: map (pypa.isPlatformTagCompatible t.platform t.libc) parsed.platformTags
      ) targets;
      parses = (builtins.tryEval (builtins.deepSeq parsed true)).success;
    in
    pypa.isWheelFileName name
    && parses
    && lib.all archKnown parsed.platformTags
    && (builtins.tryEval (builtins.deepSeq verdicts true)).success;

  lock = builtins.fromTOML (builtins.readFile lockFile);
  wheels = lib.filter (lib.hasSuffix ".whl") (
    lib.concatMap (p: map (f: f.file) (p.files or [ ])) lock.package
  );
  judged = map (name: {
    inherit name;
    real = realAccepts name;
    ours = guard.wheelProblem name == null;
  }) wheels;
in
{
  wheels = builtins.length wheels;
  realRejects = builtins.length (lib.filter (j: !j.real) judged);
  disagree = lib.filter (j: j.real != j.ours) judged;
}

# Can poetry2nix read our poetry.lock? A pure check (no nixpkgs, no poetry2nix), run by
# .ci/nix-check and tests/nix/test_nix_poetry_lock.py with Nix 2.8:
#
#   nix-instantiate --eval --strict --json --store dummy:// -E "import ./checks/poetry-lock.nix { }"
#
# poetry2nix (through its vendored pyproject.nix) parses the name of every wheel of a
# package it builds, with `assert`s and `throw`s rather than by skipping names it does
# not know; one such name in the lock fails every `nixos-rebuild` with the module. The
# rules below are the grammar it accepts (as of poetry2nix ce2369db, which flake.lock
# pins), restated here, stricter where its laziness would only sometimes save us:
#   {distribution}-{version}(-{build})?-{python tags}-{abi tag}-{platform tags}.whl
#   - each python tag (dot-separated) is letters then digits: cp311, py3, pp310;
#   - the abi tag is ONE tag: letters, digits, an optional `_` and letters/digits
#     (cp311, abi3, none, pypy310_pp73; not `abi3.abi3t`, not graalpy's
#     `graalpy311_graalpy242_311_native`);
#   - each platform tag is `any`, `linux_<arch>`, `win32`, `win_<arch>`,
#     `macosx_<major>_<minor>_<arch>`, or manylinux/musllinux (PEP 600/656 spelling or
#     the legacy manylinux1/2010/2014 aliases) for an arch in its PEP 599 table;
#     everything else (android_*, ios_*, riscv64 manylinux, ...) throws.
# And every package needs at least one file CPython on Linux (x86_64, aarch64) can use,
# unless pkgs/hyperhive/poetry-overrides.nix lists it as absent.
# shared/tools/poetry-lock writes locks that pass; tests/nix/real/wheel-selection.nix
# replays the real thing where poetry2nix's sources are at hand (docs/nixos.md).
{
  lockFile ? ../poetry.lock,
  absent ? (import ../pkgs/hyperhive/poetry-overrides.nix).absent,
}:
let
  inherit (builtins)
    any
    concatMap
    elem
    filter
    fromTOML
    length
    readFile
    ;

  inherit (import ./wheel-names.nix) wheelProblem linuxUsable hasSuffix;

  lock = fromTOML (readFile lockFile);
  packages = lock.package or [ ];

  fileProblems =
    pkg:
    concatMap (
      f:
      let
        why = if hasSuffix ".whl" f.file then wheelProblem f.file else null;
      in
      if why == null then [ ] else [ "${pkg.name} ${pkg.version}: ${f.file}: ${why}" ]
    ) (pkg.files or [ ]);

  packageProblems =
    pkg:
    if elem pkg.name absent || any (f: linuxUsable f.file) (pkg.files or [ ]) then
      [ ]
    else
      [
        "${pkg.name} ${pkg.version}: no file CPython on x86_64/aarch64 Linux can use (regenerate the lock, or list it in pkgs/hyperhive/poetry-overrides.nix if Linux never needs it)"
      ];

  problems = concatMap (p: fileProblems p ++ packageProblems p) packages;
in
{
  inherit problems;
  packages = length packages;
  wheels = length (
    concatMap (p: filter (f: hasSuffix ".whl" f.file) (p.files or [ ])) packages
  );
}

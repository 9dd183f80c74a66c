# Replays poetry2nix's file selection for every package of our poetry.lock, with the REAL
# poetry2nix and the REAL nixpkgs `lib` (not in this repository; see docs/nixos.md,
# "Evaluating against the real poetry2nix and nixpkgs lib"). Not part of CI.
#
# It calls poetry2nix's own mk-poetry-dep.nix per package, exactly as its mkPoetryPackages
# does (same arguments, same marker and python-versions filter, via its own vendored
# pyproject.nix), with stand-ins only for what needs nixpkgs: the Python derivation (its
# version, implementation, platform and glibc), buildPythonPackage (returns its
# arguments) and the fetchers (return the file they were asked for). Every package the
# project needs (main and dev groups, transitively) is forced. So a wheel name
# poetry2nix cannot parse, a package without a usable file, or a marker it cannot read
# fails here the way it fails in `nixos-rebuild`.
#
#   nix-instantiate --eval --strict --json --store dummy:// tests/nix/real/wheel-selection.nix \
#     --arg poetry2nix /path/to/poetry2nix --arg nixpkgsLib /path/to/nixpkgs.lib \
#     --argstr system aarch64-linux --argstr python 3.12
{
  poetry2nix,
  nixpkgsLib,
  system ? "x86_64-linux",
  python ? "3.11",
  preferWheels ? true,
  glibcVersion ? "2.40",
  lockFile ? ../../../poetry.lock,
  pyprojectFile ? ../../../pyproject.toml,
}:
let
  lib = import (nixpkgsLib + "/lib");
  pyproject-nix = import (poetry2nix + "/vendor/pyproject.nix") { inherit lib; };
  inherit (pyproject-nix.lib.pypa) normalizePackageName;

  platform = lib.systems.elaborate system;
  versionParts = lib.splitString "." python;
  glibc = {
    pname = "glibc";
    version = glibcVersion;
    linuxHeaders.version = "6.12";
  };
  stdenv = {
    targetPlatform = platform;
    hostPlatform = platform;
    buildPlatform = platform;
    cc.libc = glibc;
  };
  stubHooks = {
    poetry2nixFixupHook = "poetry2nixFixupHook";
    poetry2nixPythonRequiresPatchHook = "poetry2nixPythonRequiresPatchHook";
    removePathDependenciesHook = "removePathDependenciesHook";
    removeGitDependenciesHook = "removeGitDependenciesHook";
    removeWheelUrlDependenciesHook = "removeWheelUrlDependenciesHook";
    pipBuildHook = "pipBuildHook";
  };
  pythonDrv = {
    pname = "python3";
    version = "${python}.0";
    pythonVersion = python;
    implementation = "cpython";
    passthru = {
      implementation = "cpython";
      pythonVersion = python;
      sourceVersion = {
        major = lib.elemAt versionParts 0;
        minor = lib.elemAt versionParts 1;
        patch = "0";
      };
    };
    inherit stdenv;
    meta.platforms = [ system ];
    pkgs.callPackage = _: _: stubHooks;
  };

  stubPkgs = {
    pythonManylinuxPackages = {
      manylinux1 = "manylinux1";
      manylinux2010 = "manylinux2010";
      manylinux2014 = "manylinux2014";
    };
  };
  poetryLib = import (poetry2nix + "/lib.nix") {
    inherit lib pyproject-nix;
    pkgs = stubPkgs;
    stdenv = stubPkgs;
  };

  poetryLock = builtins.fromTOML (builtins.readFile lockFile);
  pep508Env = pyproject-nix.lib.pep508.mkEnviron pythonDrv;
  pyVersion = pyproject-nix.lib.pep440.parseVersion pythonDrv.version;

  # poetry2nix's own filter (default.nix, `partitions`).
  supportsPythonVersion =
    pkgMeta:
    if pkgMeta ? marker then
      pyproject-nix.lib.pep508.evalMarkers pep508Env (
        pyproject-nix.lib.pep508.parseMarkers pkgMeta.marker
      )
    else
      poetryLib.checkPythonVersions pyVersion pkgMeta.python-versions;
  partitions = lib.partition supportsPythonVersion poetryLock.package;

  mkPoetryDep = import (poetry2nix + "/mk-poetry-dep.nix") {
    inherit
      lib
      poetryLib
      pep508Env
      pyVersion
      pyproject-nix
      ;
    python = pythonDrv;
    autoPatchelfHook = "autoPatchelfHook";
    buildPythonPackage = attrs: attrs;
    fetchFromPypi = args: args;
    fetchPypiLegacy = args: args;
  };

  # Every package name resolves (to its name): propagatedBuildInputs is evaluated too.
  pythonPackages =
    lib.genAttrs (map (p: normalizePackageName p.name) poetryLock.package) (n: n)
    // {
      isPy27 = false;
      wheelUnpackHook = "wheelUnpackHook";
      pypaInstallHook = "pypaInstallHook";
      callPackage = f: args: f args;
    };

  # Like the real package set, a package is evaluated only when something needs it: the
  # project's main and dev groups, then whatever their (marker-filtered) dependencies
  # name. pywin32, for instance, is locked without a single Linux file and only ever
  # needed on Windows.
  pyProject = builtins.fromTOML (builtins.readFile pyprojectFile);
  roots = map normalizePackageName (
    lib.remove "python" (
      lib.attrNames (
        pyProject.tool.poetry.dependencies // (pyProject.tool.poetry.group.dev.dependencies or { })
      )
    )
  );
  byName = lib.listToAttrs (
    map (entry: lib.nameValuePair entry.name entry) selectedAll
  );
  # Our overrides null these (pkgs/hyperhive/poetry-overrides.nix): never followed.
  inherit (import ../../../pkgs/hyperhive/poetry-overrides.nix) absent;
  reachable = builtins.genericClosure {
    startSet = map (key: { inherit key; }) roots;
    operator =
      item:
      map (key: { inherit key; }) (lib.subtractLists absent (
        byName.${item.key} or (throw "${item.key} is needed but not in the lock for this Python")
      ).dependencies);
  };

  selectedAll = map (
    pkgMeta:
    let
      drv = mkPoetryDep (
        pkgMeta
        // {
          inherit preferWheels;
          pwd = ../../..;
          source = pkgMeta.source or null;
          inherit (pkgMeta) files;
          inherit pythonPackages;
          sourceSpec = { };
        }
      );
    in
    {
      name = normalizePackageName pkgMeta.name;
      inherit (drv) format;
      file = drv.src.file;
      dependencies = drv.propagatedBuildInputs;
      nativeBuildInputs = builtins.length drv.nativeBuildInputs;
    }
  ) partitions.right;
in
{
  inherit system python preferWheels absent;
  packages = map (item: byName.${item.key}) reachable;
  skipped = map (p: p.name) partitions.wrong;
}

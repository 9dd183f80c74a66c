# Our psycopg override (pkgs/hyperhive/poetry-overrides.nix) through the REAL poetry2nix:
# its defaultPoetryOverrides (every default overlay layer), extended with ours exactly as
# pkgs/hyperhive/default.nix does, unwrapped as its mkPoetryPackages unwraps it, and
# applied to a package set whose psycopg is made by poetry2nix's own mk-poetry-dep.nix
# from our poetry.lock (preferWheels). Stand-ins only for what needs nixpkgs: the Python
# derivation, buildPythonPackage (its arguments, with overridePythonAttrs/override that
# merge like nixpkgs'), libpq and glibc (store paths). Not in CI; see tests/nix/real/run.
#
#   nix-instantiate --eval --strict --json --store dummy:// tests/nix/real/psycopg-override.nix \
#     --arg poetry2nix /path/to/poetry2nix --arg nixpkgsLib /path/to/nixpkgs.lib
{
  poetry2nix,
  nixpkgsLib,
  system ? "x86_64-linux",
  python ? "3.11",
  lockFile ? ../../../poetry.lock,
}:
let
  lib = import (nixpkgsLib + "/lib");
  pyproject-nix = import (poetry2nix + "/vendor/pyproject.nix") { inherit lib; };
  platform = lib.systems.elaborate system;
  versionParts = lib.splitString "." python;

  storePath = name: "/nix/store/00000000000000000000000000000000-${name}";
  glibc = {
    pname = "glibc";
    version = "2.40";
    outPath = storePath "glibc-2.40";
    linuxHeaders.version = "6.12";
  };
  libpq = {
    type = "derivation";
    pname = "libpq";
    outPath = storePath "libpq-17.6";
  };
  stdenv = {
    targetPlatform = platform;
    hostPlatform = platform;
    buildPlatform = platform;
    cc.libc = glibc;
  };
  pythonDrv = {
    pname = "python3";
    version = "${python}.0";
    pythonVersion = python;
    implementation = "cpython";
    sitePackages = "lib/python${python}/site-packages";
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
    pkgs.callPackage = _: _: {
      poetry2nixFixupHook = "poetry2nixFixupHook";
      poetry2nixPythonRequiresPatchHook = "poetry2nixPythonRequiresPatchHook";
      pipBuildHook = "pipBuildHook";
    };
  };
  pkgs = {
    inherit lib stdenv libpq;
    pythonManylinuxPackages = {
      manylinux1 = "manylinux1";
      manylinux2010 = "manylinux2010";
      manylinux2014 = "manylinux2014";
    };
  };

  poetryLib = import (poetry2nix + "/lib.nix") {
    inherit lib pyproject-nix pkgs stdenv;
  };
  p2n = import (poetry2nix + "/default.nix") { inherit pkgs lib; };

  # As buildPythonPackage's result: overridePythonAttrs merges what its function returns.
  mkDrv =
    attrs:
    attrs
    // {
      overridePythonAttrs = f: mkDrv (attrs // (if lib.isFunction f then f attrs else f));
      override = args: mkDrv (attrs // args);
    };

  poetryLock = builtins.fromTOML (builtins.readFile lockFile);
  psycopgMeta = lib.findFirst (p: p.name == "psycopg") (throw "psycopg is not in the lock") poetryLock.package;
  mkPoetryDep = import (poetry2nix + "/mk-poetry-dep.nix") {
    inherit lib poetryLib pyproject-nix;
    pep508Env = pyproject-nix.lib.pep508.mkEnviron pythonDrv;
    pyVersion = pyproject-nix.lib.pep440.parseVersion pythonDrv.version;
    python = pythonDrv;
    autoPatchelfHook = "autoPatchelfHook";
    buildPythonPackage = attrs: attrs;
    fetchFromPypi = args: args;
    fetchPypiLegacy = args: args;
  };
  pythonPackages = {
    isPy27 = false;
    typing-extensions = "typing-extensions";
    tzdata = "tzdata";
    wheelUnpackHook = "wheelUnpackHook";
    pypaInstallHook = "pypaInstallHook";
    callPackage = f: args: f args;
  };

  base = _final: {
    python = pythonDrv;
    isPy3k = true;
    setuptools = mkDrv { pname = "setuptools"; };
    psycopg = mkDrv (mkPoetryDep (
      psycopgMeta
      // {
        preferWheels = true;
        pwd = ../../..;
        source = null;
        inherit (psycopgMeta) files;
        inherit pythonPackages;
        sourceSpec = { };
      }
    ));
  };

  # What pkgs/hyperhive/default.nix passes, and how poetry2nix's mkPoetryPackages takes
  # the overlay out of it (getFunctorFn).
  ours = (import ../../../pkgs/hyperhive/poetry-overrides.nix).overrides { inherit p2n pkgs; };
  overlay = if builtins.isAttrs ours then ours.__functor else ours;
  set = lib.fix (lib.extends overlay base);
  drv = set.psycopg;
in
{
  inherit system python;
  inherit (drv) format pythonImportsCheck;
  file = drv.src.file;
  postInstall = drv.postInstall;
  libpq = "${libpq}/lib/libpq.so";
  libc = "${glibc}/lib/libc.so.6";
  sitePackages = pythonDrv.sitePackages;
}

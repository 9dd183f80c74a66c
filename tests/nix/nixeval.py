"""Helpers shared by the Nix checks (imported by conftest.py and the test modules)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

NixEval = Callable[[str], Any]


def tracked(*patterns: str) -> list[Path]:
    """The files git tracks that match `patterns` (e.g. "*.nix").

    Tests read the product, never whatever else lies in the checkout: `./scripts/run` keeps
    its run state (agents' config repos, written by agents) in `./.hyperhive/`.
    """
    out = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--", *patterns],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    return [REPO / name for name in out.decode().split("\0") if name]


def nix_string(value: str) -> str:
    """A Nix expression for the string `value`, for any text Nix can hold (not NUL).

    Nix string literals have no \\u escapes, so the value travels as ASCII-only JSON in
    an indented string; `$` and `'` are JSON-escaped so neither `${` nor `''` can occur.
    """
    if "\0" in value:
        raise ValueError("Nix strings cannot contain NUL")
    encoded = json.dumps(value).replace("$", "\\u0024").replace("'", "\\u0027")
    return f"(builtins.fromJSON ''{encoded}'')"


# A stand-in poetry2nix: mkPoetryApplication/mkPoetryEnv return their arguments, and
# `defaultPoetryOverrides.extend overlay` applies the overlay to an empty package set, so
# a test sees what a build would be asked for (groups, preferWheels, nulled packages).
STUB_POETRY2NIX_NIX = """{
  lib.mkPoetry2Nix = { pkgs }: {
    mkPoetryApplication = args: args;
    mkPoetryEnv = args: args;
    # `prev` has what our overlay builds on: the SDK's package (override records what it
    # was asked for), hatchling and psycopg; `final.python` what a package set's has.
    defaultPoetryOverrides.extend = overlay: {
      extended = overlay {
        python = {
          sitePackages = "lib/python3.11/site-packages";
          stdenv.cc.libc = "/nix/store/0-glibc";
        };
      } {
        hatchling = "hatchling";
        claude-agent-sdk.override = args: {
          overridePythonAttrs = f: args // f { nativeBuildInputs = [ "poetry-core" ]; };
        };
        psycopg.overridePythonAttrs = f: f { postInstall = "# wheel installed\n"; };
      };
    };
  };
}"""

# Stand-in flake inputs: enough for the outputs that do not need nixpkgs (lib, templates,
# module and overlay attribute names). `lib.nixosSystem` returns its arguments so tests
# can see which modules a system would be built from.
STUB_FLAKE = """
let
  genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
  stubPkgs = system: {
    stdenv.hostPlatform = { inherit system; extensions.sharedLibrary = ".so"; };
    libpq = "/nix/store/0-libpq";
    callPackage = path: args: { inherit path args; };
  };
  nixpkgs = {
    lib = {
      inherit genAttrs;
      nixosSystem = args: args;
      cleanSource = src: src;
    };
    legacyPackages = genAttrs [ "x86_64-linux" "aarch64-linux" ] stubPkgs;
  };
  STUB_POETRY2NIX = __STUB_POETRY2NIX__;
  flake = import ./flake.nix;
  outputs = flake.outputs {
    self = outputs // { outPath = toString ./.; };
    inherit nixpkgs;
    nixpkgs-unstable = { };
    poetry2nix = STUB_POETRY2NIX;
  };
in
outputs
""".replace("__STUB_POETRY2NIX__", STUB_POETRY2NIX_NIX)

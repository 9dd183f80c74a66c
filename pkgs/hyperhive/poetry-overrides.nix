# What poetry2nix needs to be told about our poetry.lock, shared by the package
# (pkgs/hyperhive), the dev shell and the pytest check (flake.nix). Pure Nix: the
# lock guard (checks/poetry-lock.nix) and tests/nix read `absent` without nixpkgs.
{
  # Locked, but never installed on Linux. poetry2nix ignores the markers of a
  # dependency given as a list of constraints (mcp: `pywin32 = [ {version, markers =
  # "sys_platform == 'win32' ..."}, ... ]`) and would build these for every platform;
  # the lock holds no Linux file for them, so evaluation throws "Missing suitable
  # source/wheel file entry". They become null in the package set, as poetry2nix does
  # with packages whose own markers exclude the platform.
  absent = [ "pywin32" ];

  # The override for mkPoetryApplication/mkPoetryEnv: poetry2nix's defaults plus `absent`,
  # and:
  # - claude-agent-sdk built from its sdist: its wheels bundle a claude executable
  #   (Bun); the harness runs the claude the project pins (cli_path), and the sdist has
  #   no binary.
  # - psycopg (pure Python) pointed at nixpkgs' libpq and the C library by absolute path.
  #   At import it loads both with ctypes.util.find_library("pq") and ("c"), which ask
  #   ldconfig's cache and a C compiler: on NixOS neither knows store paths, so the
  #   import fails with "libpq library not found" (and the libc fallback "libc.so" is a
  #   linker script). The wheel's two look-ups are replaced in the installed files;
  #   --replace-fail stops the build when a psycopg release changes those lines, and
  #   the import check proves the library loads. The store paths in the patched files
  #   make libpq part of the runtime closure.
  overrides =
    { p2n, pkgs }:
    p2n.defaultPoetryOverrides.extend (
      final: prev:
      builtins.listToAttrs (
        map (name: {
          inherit name;
          value = null;
        }) (import ./poetry-overrides.nix).absent
      )
      // {
        claude-agent-sdk =
          (prev.claude-agent-sdk.override { preferWheel = false; }).overridePythonAttrs
            (old: {
              nativeBuildInputs = (old.nativeBuildInputs or [ ]) ++ [ prev.hatchling ];
            });

        psycopg = prev.psycopg.overridePythonAttrs (
          old:
          let
            pq = "$out/${final.python.sitePackages}/psycopg/pq";
            # Current nixpkgs has libpq as a package of its own; older ones postgresql.lib.
            libpq = "${pkgs.libpq or pkgs.postgresql.lib}/lib/libpq${pkgs.stdenv.hostPlatform.extensions.sharedLibrary}";
            libc = "${final.python.stdenv.cc.libc}/lib/libc.so.6";
          in
          {
            postInstall = (old.postInstall or "") + ''
              substituteInPlace ${pq}/misc.py \
                --replace-fail 'ctypes.util.find_library("pq")' '"${libpq}"'
              substituteInPlace ${pq}/_pq_ctypes.py \
                --replace-fail 'ctypes.util.find_library("c")' '"${libc}"'
            '';
            pythonImportsCheck = (old.pythonImportsCheck or [ ]) ++ [ "psycopg" ];
          }
        );
      }
    );
}

# Evaluate our NixOS modules without nixpkgs, for tests only (see stub-lib.nix).
#
# Collects the option declarations of `modules`, builds `config` from their defaults
# overlaid with `settings` (what a user would set), calls every module with that config,
# resolves mkIf/mkMerge and merges the modules' definitions (attrsets recursively, lists
# concatenated). Returns { options, config, definitions }.
{
  modules,
  pkgs,
  settings ? { },
}:
let
  lib = import ./stub-lib.nix;

  isOption = lib.isOption;

  merge =
    a: b:
    if builtins.isAttrs a && builtins.isAttrs b && !(isOption a) && !(isOption b) then
      a
      // builtins.mapAttrs (name: value: if a ? ${name} then merge a.${name} value else value) b
    else if builtins.isList a && builtins.isList b then
      a ++ b
    else
      b;

  resolve =
    value:
    if builtins.isAttrs value && (value._type or null) == "if" then
      (if value.condition then resolve value.content else { })
    else if builtins.isAttrs value && (value._type or null) == "merge" then
      builtins.foldl' merge { } (map resolve value.contents)
    else if builtins.isAttrs value && !(value ? _type) && !(value ? outPath) then
      builtins.mapAttrs (_: resolve) value
    else
      value;

  # The option tree's defaults; options without a default are left out.
  defaults =
    tree:
    if isOption tree then
      tree.default
    else
      builtins.mapAttrs (_: defaults) (
        builtins.removeAttrs tree (
          builtins.filter (
            n: isOption tree.${n} && !(tree.${n} ? default)
          ) (builtins.attrNames tree)
        )
      );

  called = map (
    path:
    import path {
      inherit lib pkgs config;
    }
  ) modules;

  options = builtins.foldl' merge { } (map (m: m.options or { }) called);

  config = merge (defaults options) settings;

  definitions = builtins.foldl' merge { } (map (m: resolve (m.config or { })) called);
in
{
  inherit options config definitions;
}

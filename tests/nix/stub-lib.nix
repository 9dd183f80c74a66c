# A stand-in for the slice of nixpkgs' `lib` our modules use, for tests only.
#
# nixpkgs cannot be fetched here, so tests/nix evaluates the modules' option declarations
# and config bodies with this instead of the real module system. It keeps the shapes the
# modules depend on (mkOption's attributes, mkIf/mkMerge as markers a test can resolve,
# option types as descriptive attrsets) and implements the plain functions (getExe,
# hasPrefix, optional, ...) with nixpkgs' semantics. It is not a module system: merging,
# priorities and type checking are the real one's job on a machine with Nix.
let
  inherit (builtins)
    all
    attrNames
    concatMap
    elem
    filter
    foldl'
    head
    isAttrs
    isList
    listToAttrs
    stringLength
    substring
    ;

  type = name: extra: { _type = "option-type"; inherit name; } // extra;
in
rec {
  # Options.
  mkOption = attrs: attrs // { _type = "option"; };
  mkEnableOption = what: mkOption {
    type = types.bool;
    default = false;
    example = true;
    description = "Whether to enable ${what}.";
  };
  # The shape of nixpkgs' mkPackageOption for `pkgs.<name>` (no nested attribute paths).
  mkPackageOption =
    pkgs: name:
    {
      extraDescription ? "",
      ...
    }:
    mkOption {
      type = types.package;
      default = pkgs.${name};
      defaultText = literalExpression "pkgs.${name}";
      description = "The ${name} package to use. " + extraDescription;
    };
  literalExpression = text: {
    _type = "literalExpression";
    inherit text;
  };

  types = {
    str = type "str" { };
    bool = type "bool" { };
    port = type "port" { };
    package = type "package" { };
    path = type "path" { };
    deferredModule = type "deferredModule" { };
    enum = values: type "enum" { inherit values; };
    listOf = elemType: type "listOf" { inherit elemType; };
    attrsOf = elemType: type "attrsOf" { inherit elemType; };
    nullOr = elemType: type "nullOr" { inherit elemType; };
    submodule = module: type "submodule" { inherit module; };
    ints = {
      unsigned = type "ints.unsigned" { };
      positive = type "ints.positive" { };
    };
  };

  # Definitions: markers, resolved by tests/nix/eval-module.nix.
  mkIf = condition: content: {
    _type = "if";
    inherit condition content;
  };
  mkMerge = contents: {
    _type = "merge";
    inherit contents;
  };
  mkDefault = value: value;
  mkForce = value: value;

  # Plain functions, as in nixpkgs.
  getExe =
    drv: "${drv}/bin/${drv.meta.mainProgram or drv.pname or (builtins.parseDrvName drv.name).name}";
  getExe' = drv: name: "${drv}/bin/${name}";
  hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;
  hasSuffix =
    suffix: s:
    let
      ls = stringLength s;
      lf = stringLength suffix;
    in
    lf <= ls && substring (ls - lf) lf s == suffix;
  removePrefix =
    prefix: s:
    if hasPrefix prefix s then substring (stringLength prefix) (stringLength s) s else s;
  optional = cond: x: if cond then [ x ] else [ ];
  optionals = cond: xs: if cond then xs else [ ];
  toLower = builtins.replaceStrings (builtins.genList (
    i: builtins.substring i 1 "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  ) 26) (builtins.genList (i: builtins.substring i 1 "abcdefghijklmnopqrstuvwxyz") 26);
  versionAtLeast = v1: v2: builtins.compareVersions v1 v2 >= 0;
  optionalAttrs = cond: attrs: if cond then attrs else { };
  inherit all elem concatMap;
  attrValues = attrs: map (n: attrs.${n}) (attrNames attrs);
  genAttrs =
    names: f:
    listToAttrs (
      map (n: {
        name = n;
        value = f n;
      }) names
    );

  # Used by tests, not by the modules.
  isOption = x: isAttrs x && (x._type or null) == "option";
  inherit filter foldl' head isList;
}

# Does flake.lock fit flake.nix? A pure check (no network, no nixpkgs), run by
# .ci/nix-check and tests/nix/test_nix_flake_lock.py with Nix 2.8:
#
#   nix-instantiate --eval --strict --json --store dummy:// -E "import ./checks/flake-lock.nix { }"
#
# It checks the structure Nix itself would write (docs/nixos.md, "flake.lock"): lock
# version 7; the root's inputs are exactly flake.nix's; each root input's `original` is
# its `url` (github:OWNER/REPO[/REF]); every `inputs.<x>.inputs.<y>.follows` of flake.nix
# is a follows edge in the lock; every node an edge names exists and every follows path
# resolves; every locked github node has a rev, a narHash and lastModified. It cannot
# check that a narHash is the hash of that rev (that needs the sources).
{
  flakeFile ? ../flake.nix,
  lockFile ? ../flake.lock,
}:
let
  inherit (builtins)
    attrNames
    concatMap
    elemAt
    filter
    fromJSON
    head
    isList
    isString
    length
    match
    readFile
    split
    tail
    ;

  flake = import flakeFile;
  lock = fromJSON (readFile lockFile);
  nodes = lock.nodes or { };
  root = nodes.${lock.root or "root"} or { };
  rootInputs = root.inputs or { };

  sorted = builtins.sort (a: b: a < b);
  show = xs: "[ ${toString xs} ]";

  # github:OWNER/REPO or github:OWNER/REPO/REF -> the lock's `original`.
  originalOf =
    url:
    let
      m = match "github:([^/]+)/([^/?]+)(/([^?]+))?" url;
    in
    if m == null then
      null
    else
      {
        type = "github";
        owner = elemAt m 0;
        repo = elemAt m 1;
      }
      // (if elemAt m 3 == null then { } else { ref = elemAt m 3; });

  # Follow an input path (["poetry2nix" "nixpkgs"]) from the root to a node name.
  resolve =
    path:
    let
      step =
        nodeName: names:
        if names == [ ] then
          nodeName
        else
          let
            edge = (nodes.${nodeName} or { }).inputs.${head names} or null;
          in
          if edge == null then
            null
          else if isList edge then
            step (resolve edge) (tail names)
          else
            step edge (tail names);
    in
    step (lock.root or "root") path;

  rootProblems =
    if sorted (attrNames rootInputs) != sorted (attrNames flake.inputs) then
      [
        "flake.lock is stale: flake.nix has inputs ${show (sorted (attrNames flake.inputs))}, flake.lock's root has ${show (sorted (attrNames rootInputs))}"
      ]
    else
      [ ];

  inputProblems = concatMap (
    name:
    let
      spec = flake.inputs.${name};
      edge = rootInputs.${name} or null;
      node = if isString edge then nodes.${edge} or null else null;
      wanted = originalOf (spec.url or "");
      follows = spec.inputs or { };
    in
    if edge == null then
      [ ]
    else if node == null then
      [ "root input ${name} points at a missing node" ]
    else
      (
        if wanted != null && node.original or null != wanted then
          [ "${name}: flake.lock's original is not flake.nix's url ${spec.url}" ]
        else
          [ ]
      )
      ++ concatMap (
        sub:
        let
          want = filter isString (split "/" follows.${sub}.follows);
          got = node.inputs.${sub} or null;
        in
        if follows.${sub} ? follows && got != want then
          [ "${name}.inputs.${sub} should follow ${follows.${sub}.follows} (flake.nix) but the lock says otherwise" ]
        else
          [ ]
      ) (attrNames follows)
  ) (attrNames flake.inputs);

  edgeProblems = concatMap (
    nodeName:
    concatMap (
      input:
      let
        edge = nodes.${nodeName}.inputs.${input};
      in
      if isList edge then
        (if resolve edge == null then [ "${nodeName}.${input} follows a path that does not resolve" ] else [ ])
      else if !(nodes ? ${edge}) then
        [ "${nodeName}.${input} points at a missing node ${edge}" ]
      else
        [ ]
    ) (attrNames (nodes.${nodeName}.inputs or { }))
  ) (attrNames nodes);

  lockedProblems = concatMap (
    nodeName:
    let
      locked = nodes.${nodeName}.locked or null;
    in
    if nodeName == (lock.root or "root") then
      [ ]
    else if locked == null then
      [ "${nodeName} is not locked" ]
    else if locked.type or null != "github" then
      [ "${nodeName} is locked to a ${locked.type or "?"} input, not github (a lock written with --override-input path:...?)" ]
    else if
      match "[0-9a-f]{40}" (locked.rev or "") == null
      || match "sha256-[A-Za-z0-9+/]{43}=" (locked.narHash or "") == null
      || !(builtins.isInt (locked.lastModified or null))
    then
      [ "${nodeName} needs rev (40 hex), narHash (sha256-...) and lastModified" ]
    else
      [ ]
  ) (attrNames nodes);

  problems =
    (if lock.version or null != 7 then [ "flake.lock version is not 7" ] else [ ])
    ++ rootProblems
    ++ inputProblems
    ++ edgeProblems
    ++ lockedProblems;
in
{
  inherit problems;
  inputs = sorted (attrNames rootInputs);
  nodes = length (attrNames nodes);
}

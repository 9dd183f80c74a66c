# The wheel-name grammar poetry2nix accepts, as pure Nix functions (no nixpkgs). Used by
# checks/poetry-lock.nix; tests/nix/real/lock-guard-agreement.nix compares it with the
# real pyproject.nix on every wheel name of a lock. The rules: checks/poetry-lock.nix.
let
  inherit (builtins)
    all
    any
    elem
    elemAt
    filter
    isString
    match
    split
    ;

  # pyproject.nix's pep599 table (the arches its manylinux/musllinux check knows).
  manylinuxArches = [
    "x86_64"
    "i686"
    "aarch64"
    "armv7l"
    "ppc64"
    "ppc64le"
    "s390x"
  ];
  legacyManylinux = [
    "manylinux1_x86_64"
    "manylinux1_i686"
    "manylinux2010_x86_64"
    "manylinux2010_i686"
    "manylinux2014_x86_64"
    "manylinux2014_i686"
    "manylinux2014_aarch64"
    "manylinux2014_armv7l"
    "manylinux2014_ppc64"
    "manylinux2014_ppc64le"
    "manylinux2014_s390x"
  ];
  # File kinds poetry2nix considers at all (its extensions.json).
  extensions = "(egg|tar|tar\\.bz2|tar\\.gz|tar\\.lz|tar\\.lzma|tar\\.xz|tbz|tgz|tlz|txz|whl|zip)";

  dotted = s: filter isString (split "\\." s);
  hasSuffix =
    suffix: s:
    let
      n = builtins.stringLength s;
      k = builtins.stringLength suffix;
    in
    k <= n && builtins.substring (n - k) k s == suffix;

  wheelParts = match "([^-]+)-([^-]+)(-([[:digit:]][^-]*))?-([^-]+)-([^-]+)-(.+)\\.whl";

  platformTagProblem =
    tag:
    let
      linuxTag = kind: match "${kind}_([0-9]+)_([0-9]+)_(.*)" tag;
      archOk = m: m != null && elem (elemAt m 2) manylinuxArches;
      unknownArch = kind: "${kind} tag for an arch poetry2nix does not know";
    in
    if tag == "any" || tag == "win32" || elem tag legacyManylinux then
      null
    else if match "manylinux.*" tag != null then
      (if archOk (linuxTag "manylinux") then null else unknownArch "manylinux")
    else if match "musllinux.*" tag != null then
      (if archOk (linuxTag "musllinux") then null else unknownArch "musllinux")
    else if match "macosx.*" tag != null then
      (if match "macosx_([0-9]+)_([0-9]+)_(.+)" tag != null then null else "malformed macosx tag")
    else if match "win_.+" tag != null || match "linux_.+" tag != null then
      null
    else
      "unknown platform tag";

  # null when poetry2nix parses the name; else why not.
  wheelProblem =
    file:
    let
      m = wheelParts file;
      pythonTags = dotted (elemAt m 4);
      abiTag = elemAt m 5;
      platformTags = dotted (elemAt m 6);
      badPlatform = filter (p: p.why != null) (
        map (tag: {
          inherit tag;
          why = platformTagProblem tag;
        }) platformTags
      );
    in
    if m == null then
      "not a wheel name ({distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl)"
    else if !all (t: match "[a-z]+[0-9]*" t != null) pythonTags then
      "python tag `${elemAt m 4}` is not letters+digits"
    else if match "[a-z]+[0-9]*_?[a-z0-9]*" abiTag == null then
      "abi tag `${abiTag}` is not one letters+digits(_letters/digits) tag"
    else if badPlatform != [ ] then
      "platform tag `${(builtins.head badPlatform).tag}`: ${(builtins.head badPlatform).why}"
    else
      null;

  # A file CPython 3 on x86_64/aarch64 glibc Linux can install: an sdist, or a wheel for
  # py3/cp3x with a none/abi3/cp3x ABI and an any/linux platform for one of the two.
  linuxUsable =
    file:
    let
      m = wheelParts file;
      platformOk =
        tag:
        tag == "any"
        || match "(manylinux|musllinux)(1|2010|2014|_[0-9]+_[0-9]+)_(x86_64|aarch64)" tag != null
        || match "linux_(x86_64|aarch64)" tag != null;
    in
    if hasSuffix ".whl" file then
      m != null
      && wheelProblem file == null
      && any (t: match "(py|cp)3[0-9]*" t != null) (dotted (elemAt m 4))
      && match "none|abi3|cp3[0-9]+" (elemAt m 5) != null
      && any platformOk (dotted (elemAt m 6))
    else
      !(hasSuffix ".egg" file) && match ".*\\.${extensions}" file != null;

in
{
  inherit wheelProblem linuxUsable hasSuffix;
}

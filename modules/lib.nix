# Pure helpers shared by the flake, the host module, harness-base and the overlays.
#
# Nothing here takes nixpkgs: every function is plain Nix, so tests/nix/ can check it
# with `nix-instantiate --eval` on a machine without nixpkgs (SPEC §17), and the
# numbers the modules use (ports, env variables, the unfree allow-list) are the exact
# numbers those tests compare against the Python side.
let
  inherit (builtins)
    bitAnd
    bitXor
    elem
    foldl'
    fromJSON
    genList
    isString
    listToAttrs
    match
    parseDrvName
    stringLength
    substring
    ;

  hexDigits = "0123456789abcdef";
  hexDigit = n: substring n 1 hexDigits;
  hex4 =
    n:
    hexDigit (n / 4096)
    + hexDigit (n / 256 - n / 4096 * 16)
    + hexDigit (n / 16 - n / 256 * 16)
    + hexDigit (n - n / 16 * 16);

  # One code point as a UTF-8 string. Code points above U+FFFF go through a JSON
  # surrogate pair, the only way to spell them in a JSON string.
  codePoint =
    cp:
    if cp < 65536 then
      fromJSON ''"\u${hex4 cp}"''
    else
      let
        v = cp - 65536;
      in
      fromJSON ''"\u${hex4 (55296 + v / 1024)}\u${hex4 (56320 + v - v / 1024 * 1024)}"'';

  # Nix has no `ord`. Nix strings are byte strings, so build a table from every byte
  # that can occur in valid UTF-8 (as a one-byte substring of some encoded code point)
  # to its value. 0x00 cannot occur in a Nix string; 0xC0, 0xC1 and 0xF5-0xFF never
  # occur in UTF-8.
  byteEntry = byte: offset: cp: {
    name = substring offset 1 (codePoint cp);
    value = byte;
  };
  byteTable = listToAttrs (
    genList (i: byteEntry (i + 1) 0 (i + 1)) 127 # 0x01-0x7F: ASCII
    ++ genList (i: byteEntry (128 + i) 1 (128 + i)) 64 # 0x80-0xBF: continuation bytes
    ++ genList (i: byteEntry (194 + i) 0 ((2 + i) * 64)) 30 # 0xC2-0xDF: 2-byte leads
    ++ genList (i: byteEntry (224 + i) 0 (i * 4096 + (if i == 0 then 2048 else 0))) 16 # 0xE0-0xEF
    ++ genList (i: byteEntry (240 + i) 0 (i * 262144 + (if i == 0 then 65536 else 0))) 5 # 0xF0-0xF4
  );
  byteAt = s: i: byteTable.${substring i 1 s};

  mod = a: b: a - a / b * b;
in
rec {
  # 32-bit FNV-1a over the bytes of `s` (offset basis 2166136261, prime 16777619).
  # The product stays below 2^57, inside Nix's signed 64-bit integers.
  fnv1a32 =
    s:
    foldl' (h: i: bitAnd ((bitXor h (byteAt s i)) * 16777619) 4294967295) 2166136261 (
      genList (i: i) (stringLength s)
    );

  managerName = "manager";
  managerPort = 8000;
  managerContainer = "hm1nd";
  agentPortBase = 8100;
  agentPortSpan = 900;

  # The web UI port that follows from an agent's name (SPEC §3): no probing, no state.
  agentPort =
    name: if name == managerName then managerPort else agentPortBase + mod (fnv1a32 name) agentPortSpan;

  # Names the broker gives a fixed meaning; no agent may take them.
  reservedNames = [
    managerName
    "operator"
    "system"
  ];

  # The intersection of every rule the name meets downstream (docs/lifecycle.md, "Names"),
  # the same rule as the daemon's validate_name: nixos-container names are at most 11
  # characters ("h-" plus at most 9); systemd refuses a machine or host name ending in
  # '-' ("Invalid machine name"); no "--" (DNS reserves "??--" labels).
  isValidAgentName =
    name:
    isString name
    && stringLength name <= 9
    && match "[a-z](-?[a-z0-9]){0,8}" name != null
    && !(elem name reservedNames);

  containerName = name: if name == managerName then managerContainer else "h-${name}";

  # A host's name in a multi-host hive (HYPERHIVE_HOST_NAME, shown beside each agent):
  # the daemon's rule, a DNS label of at most 31 characters.
  isValidHostName = name: isString name && match "[a-z](-?[a-z0-9]){0,30}" name != null;

  # What the module needs to know about services.hyperhive.database.url, a libpq URI
  # (postgresql://[user@][host][:port][/dbname][?param=value&...]). Not a full parser:
  # enough to refuse a password in it and to tell whether the server is this host.
  databaseUrl =
    url:
    let
      parts = match "(postgres|postgresql)://([^/?#]*)([^?#]*)(\\?[^#]*)?" url;
      authority = builtins.elemAt parts 1;
      query = if builtins.elemAt parts 3 == null then "" else builtins.elemAt parts 3;
      # userinfo is everything before the last '@' (the regex is greedy).
      userHost = match "(.*)@(.*)" authority;
      userinfo = if userHost == null then "" else builtins.head userHost;
      hostPort = if userHost == null then authority else builtins.elemAt userHost 1;
      # [v6]:port, host:port or host; an empty host means the default unix socket.
      bracketed = match "\\[([^]]*)](:[0-9]*)?" hostPort;
      uriHost =
        if bracketed != null then
          builtins.head bracketed
        else
          builtins.head (match "([^:]*)(:.*)?" hostPort);
      # `?host=` overrides the authority's host (a socket directory starts with '/').
      queryHost = match "(.*[?&])?host=([^&]*)(&.*)?" query;
      host = if queryHost != null then builtins.elemAt queryHost 1 else uriHost;
    in
    if parts == null then
      {
        valid = false;
        hasPassword = false;
        isLocal = false;
      }
    else
      {
        valid = true;
        hasPassword =
          match ".*:.*" userinfo != null || match "(.*[?&])?password=.*" query != null;
        inherit host;
        isLocal =
          host == "" || match "/.*" host != null || elem host [
            "localhost"
            "127.0.0.1"
            "::1"
          ] || match "%2[Ff].*" host != null;
      };

  # claude-code is unfree. This is the whole allow-list: the overlay and every
  # container's nixpkgs use this one predicate, so nothing else unfree slips in.
  unfreeAllowList = [ "claude-code" ];
  packageName =
    pkg: if isString pkg then (parseDrvName pkg).name else pkg.pname or (parseDrvName pkg.name).name;
  allowUnfreePredicate = pkg: elem (packageName pkg) unfreeAllowList;

  # The files a new agent's proposed repo is seeded with. The daemon reads them from
  # HYPERHIVE_AGENT_TEMPLATE_DIR, which the host module sets to this directory, and
  # the flake's `templates.agent` points here too: one source for both.
  agentTemplateDir = ../templates/agent;

  # Written by the daemon into every applied repo, read by the template's flake.nix.
  identityFile = "hyperhive-identity.json";

  # Inside every container (SPEC §3).
  container = {
    hiveDir = "/run/hive";
    socket = "/run/hive/mcp.sock";
    stateDir = "/state";
    claudeDir = "/root/.claude";
    eventsDb = "/state/hyperhive-events.sqlite";
    modelFile = "/state/hyperhive-model";
    workDir = "/state";
  };

  # systemd expands %-specifiers in Environment= assignments (`%h`, `%n`, ...; a lone
  # `%` is an error), and NixOS writes `environment` values there verbatim. Doubling
  # every `%` makes the process see exactly the configured string.
  systemdEnvironment = builtins.mapAttrs (_: value: builtins.replaceStrings [ "%" ] [ "%%" ] value);

  # The daemon's environment (read by hyperhive.settings.Settings). `cfg` is
  # services.hyperhive; `git` and `templateDir` are store paths passed in by the module
  # so this file stays free of nixpkgs.
  daemonEnvironment =
    {
      cfg,
      git,
      templateDir,
    }:
    {
      HYPERHIVE_STATE_DIR = cfg.stateDir;
      # Fixed: the unit's RuntimeDirectory is "hyperhive".
      HYPERHIVE_RUN_DIR = "/run/hyperhive";
      HYPERHIVE_BACKEND = cfg.backend;
      HYPERHIVE_DASHBOARD_PORT = toString cfg.dashboardPort;
      HYPERHIVE_DASHBOARD_HOST = cfg.dashboardHost;
      HYPERHIVE_GIT = git;
      HYPERHIVE_OPERATOR_PRONOUNS = cfg.operatorPronouns;
      HYPERHIVE_AGENT_TEMPLATE_DIR = templateDir;
      HYPERHIVE_FLAKE_REF = cfg.flakeRef;
      HYPERHIVE_RETENTION_DAYS = toString cfg.retentionDays;
      HYPERHIVE_HOST_NAME = cfg.hostName;
    }
    // (if cfg.database.url == null then { } else { HYPERHIVE_DATABASE_URL = cfg.database.url; })
    # The path of the file only: the password never enters the environment or the store.
    // (
      if cfg.database.passwordFile == null then
        { }
      else
        { HYPERHIVE_DATABASE_PASSWORD_FILE = cfg.database.passwordFile; }
    )
    // (if cfg.agentMemoryMax == null then { } else { HYPERHIVE_AGENT_MEMORY_MAX = cfg.agentMemoryMax; })
    // (if cfg.agentCpuQuota == null then { } else { HYPERHIVE_AGENT_CPU_QUOTA = cfg.agentCpuQuota; });

  # The harness's environment inside a container (read by
  # hyperhive.settings.HarnessSettings). `cfg` is the container's `hyperhive` options.
  harnessEnvironment =
    { cfg, claudeBin }:
    {
      HYPERHIVE_AGENT_NAME = cfg.name;
      HYPERHIVE_SOCKET = container.socket;
      HYPERHIVE_HIVE_DIR = container.hiveDir;
      HYPERHIVE_STATE_DIR = container.stateDir;
      HYPERHIVE_EVENTS_DB = container.eventsDb;
      HYPERHIVE_MODEL_FILE = container.modelFile;
      HYPERHIVE_WORK_DIR = container.workDir;
      HIVE_DEFAULT_MODEL = cfg.model;
      HYPERHIVE_OPERATOR_PRONOUNS = cfg.operatorPronouns;
      HYPERHIVE_CLAUDE_BIN = claudeBin;
      HYPERHIVE_RATE_LIMIT_SLEEP = toString cfg.rateLimitSleep;
      HYPERHIVE_EXTRA_MCP_SERVERS = builtins.toJSON cfg.extraMcpServers;
      HYPERHIVE_WEB_HOST = cfg.webHost;
      HYPERHIVE_WEB_PORT = toString cfg.port;
    };
}

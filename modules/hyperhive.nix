# services.hyperhive: the host daemon hive-c0re, its directories and firewall, and (via
# ./manager.nix) the declarative manager container hm1nd.
#
# This file is a plain NixOS module. The flake's `nixosModules.hyperhive` wraps it and
# supplies what only the flake knows: the package built from this repository, the
# harness-base module with its overlays, and the flake reference agents are built from.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) types;

  hlib = import ./lib.nix;
  cfg = config.services.hyperhive;

  runDir = "/run/hyperhive";

  # createLocally: the role and database are both `hyperhive`; the daemon (root) reaches
  # the server through its socket directory with peer authentication.
  localDatabase = "hyperhive";
  localDatabaseUrl = "postgresql://${localDatabase}@/${localDatabase}?host=/run/postgresql";
  database = hlib.databaseUrl cfg.database.url;
  # The server is this host (a socket directory, localhost, a loopback address).
  databaseIsLocal = cfg.database.url != null && database.isLocal;
  loopback = [
    "127.0.0.1"
    "::1"
    "localhost"
  ];
in
{
  imports = [ ./manager.nix ];

  options.services.hyperhive = {
    enable = lib.mkEnableOption "hyperhive, a swarm of Claude Code agents in NixOS containers";

    package = lib.mkPackageOption pkgs "hyperhive" {
      extraDescription = ''
        It provides `hive-c0re`, `hive-ag3nt` and `hive-m1nd`. The flake's module defaults
        it to the package built from the same flake.
      '';
    };

    stateDir = lib.mkOption {
      type = types.str;
      default = "/var/lib/hyperhive";
      example = "/var/lib/hive";
      description = ''
        Durable state: broker.sqlite, agents/<name>/{claude,state}, proposed/<name>, applied/<name>.
        Must be below /var/lib (it is the unit's StateDirectory).
      '';
    };

    backend = lib.mkOption {
      type = types.enum [
        "nixos"
        "nspawn"
        "local"
      ];
      default = "nixos";
      example = "local";
      description = ''
        How agents are isolated: `nixos` (nixos-container, production), `nspawn` (plain
        systemd-nspawn) or `local` (child processes, no isolation; for trying it out).
      '';
    };

    dashboardPort = lib.mkOption {
      type = types.port;
      default = 7000;
      example = 7700;
      description = "TCP port of the operator dashboard.";
    };

    dashboardHost = lib.mkOption {
      type = types.str;
      default = "127.0.0.1";
      example = "0.0.0.0";
      description = ''
        Bind address of the dashboard. The dashboard has no login of its own: anyone who
        reaches it is the operator. Binding beyond loopback is an explicit choice; put
        an authenticating reverse proxy or a VPN in front.
      '';
    };

    operatorPronouns = lib.mkOption {
      type = types.str;
      default = "they/them";
      example = "she/her";
      description = "How agents refer to the operator in their system prompts.";
    };

    openFirewall = lib.mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Open the dashboard port, the manager's web UI (8000) and the web UI port of each
        agent in {option}`services.hyperhive.firewallAgents` in the host firewall. Useful
        only together with non-loopback bind addresses.
      '';
    };

    firewallAgents = lib.mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "alice"
        "bob"
      ];
      description = ''
        Agents whose web UI port {option}`services.hyperhive.openFirewall` opens. Agents
        are created at runtime, so the module cannot know them; their ports follow from
        their names (8100 + fnv1a32(name) % 900).
      '';
    };

    agentMemoryMax = lib.mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "4G";
      description = ''
        systemd MemoryMax= for every agent container (a drop-in for
        container@<name>.service); null means no limit.
      '';
    };

    agentCpuQuota = lib.mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "200%";
      description = ''
        systemd CPUQuota= for every agent container; null means no limit.
      '';
    };

    retentionDays = lib.mkOption {
      type = types.ints.positive;
      default = 30;
      example = 90;
      description = ''
        Delivered and acknowledged broker messages older than this many days are deleted
        hourly. Undelivered messages, approvals and operator questions are kept forever.
      '';
    };

    flakeRef = lib.mkOption {
      type = types.str;
      default = "";
      defaultText = lib.literalExpression ''"path:''${hyperhive}" (set by the flake's module)'';
      example = "github:example/hyperhive/main";
      description = ''
        Flake reference of hyperhive itself. Every agent's flake is built with
        `--override-input hyperhive <flakeRef>`, so agents run the same hyperhive as the
        host. The flake's module points it at its own store path, which works offline.
      '';
    };

    agentTemplateDir = lib.mkOption {
      type = types.path;
      default = hlib.agentTemplateDir;
      defaultText = lib.literalExpression "<hyperhive>/templates/agent";
      example = lib.literalExpression "./my-agent-template";
      description = ''
        Directory whose files (flake.nix, agent.nix) seed every new agent's proposed
        repo. The default is the flake's `templates.agent`; the same files
        `nix flake init -t hyperhive#agent` gives you.
      '';
    };

    hostName = lib.mkOption {
      type = types.str;
      default = lib.toLower config.networking.hostName;
      defaultText = lib.literalExpression "lib.toLower config.networking.hostName";
      example = "alpha";
      description = ''
        This host's name in the hive (HYPERHIVE_HOST_NAME): shown on every dashboard
        beside the agents this host runs, and the name other hosts' errors point to. A
        lowercase letter, then up to 30 lowercase letters or digits, a single '-' only
        between two of them. Unique per hive; it only matters with
        {option}`services.hyperhive.database.url`.
      '';
    };

    database = {
      url = lib.mkOption {
        type = types.nullOr types.str;
        default = if cfg.database.createLocally then localDatabaseUrl else null;
        defaultText = lib.literalExpression ''
          if config.services.hyperhive.database.createLocally
          then "${localDatabaseUrl}" else null
        '';
        example = "postgresql://hyperhive@alpha.lan:5432/hyperhive?sslmode=require";
        description = ''
          The hive's shared store, a libpq URI (HYPERHIVE_DATABASE_URL). null keeps the
          embedded sqlite file <stateDir>/broker.sqlite (one host, nothing to set up).
          Every host of one hive points at the same PostgreSQL database. Never put the
          password in it (the URI would land in the world-readable Nix store and in the
          unit's environment): use {option}`services.hyperhive.database.passwordFile`.
        '';
      };

      passwordFile = lib.mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/run/keys/hyperhive-db";
        description = ''
          Absolute path of a file holding the database password
          (HYPERHIVE_DATABASE_PASSWORD_FILE), owned by root with mode 0600: the daemon
          reads it once at start and refuses a file others can read. A string, not a Nix
          path: a path literal would be copied into the world-readable store. Provision it
          with your secrets tool (agenix, sops-nix) or by hand. Not needed for
          {option}`services.hyperhive.database.createLocally`'s own host, which logs in
          through the local socket.
        '';
      };

      createLocally = lib.mkOption {
        type = types.bool;
        default = false;
        example = true;
        description = ''
          Run PostgreSQL on this host (services.postgresql) with a `hyperhive` role and
          database owned by it, and point {option}`services.hyperhive.database.url` at it
          through the local unix socket (peer authentication, root mapped to the
          `hyperhive` role). For one host on PostgreSQL, or the host that holds the
          database for the others; remote hosts need pg_hba entries, a listen address,
          the firewall port and a password for the role (docs/nixos.md, "A hive on
          several hosts").
        '';
      };
    };

    containerModules = lib.mkOption {
      type = types.listOf types.deferredModule;
      default = [ ./harness-base.nix ];
      defaultText = lib.literalExpression "[ hyperhive.nixosModules.harness-base ]";
      internal = true;
      description = ''
        Modules every declaratively built container (the manager) imports. The flake's
        module sets it to `nixosModules.harness-base`, which carries the overlays.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = lib.hasPrefix "/var/lib/" cfg.stateDir && !(lib.hasSuffix "/" cfg.stateDir);
        message = ''
          services.hyperhive.stateDir = "${cfg.stateDir}" must be a directory below /var/lib
          without a trailing slash (it is hive-c0re's systemd StateDirectory). Use e.g.
          "/var/lib/hyperhive", or bind-mount your disk there.
        '';
      }
      {
        assertion = cfg.backend != "nixos" || cfg.flakeRef != "";
        message = ''
          services.hyperhive.flakeRef is empty, but the nixos backend builds every agent
          with --override-input hyperhive <flakeRef>. Import the module from the hyperhive
          flake (hyperhive.nixosModules.default), which sets it, or set it yourself.
        '';
      }
      {
        # Before 22.05 NixOS keeps container confs in /etc/containers; the daemon reads
        # and rewrites /etc/nixos-containers only.
        assertion = cfg.backend != "nixos" || lib.versionAtLeast config.system.stateVersion "22.05";
        message = ''
          services.hyperhive with the nixos backend needs system.stateVersion >= "22.05"
          (it is "${config.system.stateVersion}"): older state versions keep container
          configurations in /etc/containers, where hive-c0re does not look. Use the nspawn
          backend on this host, or migrate the host to a newer stateVersion.
        '';
      }
      {
        assertion = lib.all hlib.isValidAgentName cfg.firewallAgents;
        message = ''
          services.hyperhive.firewallAgents contains an invalid agent name
          (${toString cfg.firewallAgents}): names are 1-9 characters, a lowercase letter
          first, then lowercase letters, digits or '-'. Fix or remove the entry.
        '';
      }
      {
        # Each agent container (PRIVATE_USERS=pick) and hm1nd (privateUsers = "pick")
        # reaches the host's nix-daemon socket as an unprivileged uid of its user
        # namespace: untrusted, unless "*" trusts every uid.
        assertion = !(lib.elem "*" (config.nix.settings.trusted-users or [ ]));
        message = ''
          nix.settings.trusted-users contains "*": every uid, including the root of each
          hyperhive agent container, is then a trusted Nix user, which the Nix manual calls
          equivalent to root on this host. Remove "*" and list the operators by name.
        '';
      }
    ]
    # services.hyperhive.hostName and database.
    ++ [
      {
        assertion = hlib.isValidHostName cfg.hostName;
        message = ''
          services.hyperhive.hostName = "${cfg.hostName}" is not a valid hive host name: a
          lowercase letter, then up to 30 lowercase letters or digits, a single '-' only
          between two of them (it defaults to networking.hostName, lowercased). Set
          services.hyperhive.hostName, e.g. "alpha".
        '';
      }
      {
        assertion = cfg.database.url == null || database.valid;
        message = ''
          services.hyperhive.database.url must be a libpq URI starting with postgresql:// (or
          postgres://), e.g. "postgresql://hyperhive@db.lan:5432/hyperhive".
        '';
      }
      {
        # Do not echo the URL: it holds the password this refuses.
        assertion = cfg.database.url == null || !database.hasPassword;
        message = ''
          services.hyperhive.database.url contains a password (user:password@ or a
          password= parameter). The URL ends up in the world-readable Nix store and in the
          daemon's environment. Remove the password from the URL, put it in a root-only
          file outside the store and set services.hyperhive.database.passwordFile to that
          file's path.
        '';
      }
      {
        assertion =
          cfg.database.passwordFile == null
          || (
            lib.hasPrefix "/" cfg.database.passwordFile
            && !(lib.hasPrefix "${builtins.storeDir}/" cfg.database.passwordFile)
          );
        message = ''
          services.hyperhive.database.passwordFile = "${toString cfg.database.passwordFile}"
          must be an absolute path outside ${builtins.storeDir}: everything in the Nix store
          is world-readable, so a password there is public to every user and every agent
          container. Put the file somewhere like /run/keys or /var/lib/secrets (root, mode
          0600) and give its path as a string.
        '';
      }
      {
        assertion = cfg.database.passwordFile == null || cfg.database.url != null;
        message = ''
          services.hyperhive.database.passwordFile is set but services.hyperhive.database.url
          is null, so the daemon uses its embedded sqlite store and would never read the
          password. Set database.url (or database.createLocally), or remove passwordFile.
        '';
      }
    ];

    warnings =
      lib.optional (cfg.openFirewall && lib.elem cfg.dashboardHost loopback) ''
        services.hyperhive.openFirewall opens port ${toString cfg.dashboardPort}, but the dashboard
        listens on ${cfg.dashboardHost} only. Set services.hyperhive.dashboardHost if you meant
        to reach it from elsewhere, or leave openFirewall off.
      ''
      ++ lib.optional (cfg.backend == "local") ''
        services.hyperhive.backend = "local": agents run as child processes of hive-c0re, as
        root, with no isolation at all. Use "nixos" on a real host.
      '';

    # The operator's CLI (hive-c0re spawn/approve/..., a client of host.sock).
    environment.systemPackages = [ cfg.package ];

    # The nixos backend creates imperative containers; this also installs nixos-container
    # and the container@ template unit. (The declarative manager container needs no
    # help: nixpkgs enables containers whenever `containers` is not empty.)
    boot.enableContainers = lib.mkIf (cfg.backend == "nixos") true;

    # `nixos-container create/update --flake` runs `nix build` on a flake and passes no
    # --extra-experimental-features: without these in nix.conf every spawn fails.
    nix.settings.experimental-features = lib.mkIf (cfg.backend == "nixos") [
      "nix-command"
      "flakes"
    ];

    systemd.tmpfiles.settings.hyperhive = {
      "${cfg.stateDir}/agents".d = {
        mode = "0700";
      };
      "${cfg.stateDir}/applied".d = {
        mode = "0700";
      };
      # The proposed repos (the manager's /agents): a bind source of hm1nd.
      "${cfg.stateDir}/proposed".d = {
        mode = "0700";
      };
    };

    systemd.services.hive-c0re = {
      description = "hyperhive host daemon (broker, approvals, containers, dashboard)";
      wantedBy = [ "multi-user.target" ];
      # A database on this host: start after it (postgresql.target also waits for the
      # ensureUsers/ensureDatabases setup). A remote one needs the network up; either
      # way the daemon retries by itself if the server is not there yet.
      after = [
        "network.target"
      ]
      ++ lib.optionals databaseIsLocal [
        "postgresql.service"
        "postgresql.target"
      ]
      ++ lib.optional (cfg.database.url != null && !databaseIsLocal) "network-online.target";
      wants =
        lib.optional cfg.database.createLocally "postgresql.target"
        ++ lib.optional (cfg.database.url != null && !databaseIsLocal) "network-online.target";
      # The service PATH is not the operator's: git for the config repos, and the whole
      # system profile for nixos-container, systemctl, machinectl, journalctl and nix.
      path = [
        pkgs.git
        "/run/current-system/sw"
      ];
      # Escaped: systemd expands %-specifiers in Environment= (pronouns, flake refs).
      environment =
        hlib.systemdEnvironment (hlib.daemonEnvironment {
          inherit cfg;
          git = "${pkgs.git}/bin/git";
          templateDir = "${cfg.agentTemplateDir}";
        })
        // {
          # Builds go through nix-daemon, so they run in its sandbox and not inside this
          # unit's restrictions; as root, nix would otherwise build in-process.
          NIX_REMOTE = "daemon";
        };
      serviceConfig = {
        ExecStart = "${lib.getExe' cfg.package "hive-c0re"} serve";
        Restart = "on-failure";
        RestartSec = 2;

        # /run/hyperhive holds the sockets that are bind-mounted into running
        # containers. Without Preserve, every daemon restart deletes the bind sources and
        # existing containers cannot start again (SPEC §3).
        RuntimeDirectory = "hyperhive";
        RuntimeDirectoryMode = "0755";
        RuntimeDirectoryPreserve = "yes";
        StateDirectory = lib.removePrefix "/var/lib/" cfg.stateDir;
        StateDirectoryMode = "0700";
        UMask = "0077";
        # Every open agent connection holds a descriptor; systemd's default soft limit of
        # 1,024 let one agent's idle connections starve the hive. The daemon also caps
        # connections per socket (HYPERHIVE_MAX_CONNECTIONS_PER_SOCKET, 64) and raises its
        # soft limit to this hard one at start.
        LimitNOFILE = 65536;

        # Hardening. hive-c0re manages containers, so it keeps more than a typical
        # service; each thing it keeps is listed with the reason.
        #
        # Runs as root (no User=/DynamicUser=): nixos-container writes
        # /etc/nixos-containers and /var/lib/nixos-containers, and the daemon starts and
        # stops container@ units and writes their resource-limit drop-ins.
        # No ProtectSystem=: /etc/nixos-containers/<c>.conf is rewritten on every
        # spawn/rebuild (SPEC §10), and drop-ins go below /run/systemd/system.
        # No PrivateNetwork=/IPAddressDeny=: the dashboard is served from here.
        # No RestrictNamespaces=: `nixos-container run` (login checks, journal) enters
        # the containers' namespaces.
        # No PrivateDevices=/DevicePolicy=: nixos-container and machinectl open /dev/pts
        # and /dev/net for containers they manage.
        # CapabilityBoundingSet is left full: container management needs CAP_SYS_ADMIN.
        # No ProtectHome=: the nix client keeps its fetcher cache and state below root's
        # home (~/.cache/nix, ~/.local/state/nix) and fails when it cannot create them.
        PrivateTmp = true;
        NoNewPrivileges = true;
        ProtectKernelModules = true;
        ProtectClock = true;
        LockPersonality = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        SystemCallArchitectures = "native";
      }
      # With the nspawn and local backends the agents (claude is node, with a JIT) run
      # as children of this unit and inherit its seccomp filters and mount view, and
      # systemd-nspawn itself mounts /proc/sys and /sys; so these apply to the nixos
      # backend only, where containers run under systemd's container@ units instead.
      // lib.optionalAttrs (cfg.backend == "nixos") {
        # Python, git and the nix client need no writable-and-executable memory.
        MemoryDenyWriteExecute = true;
        ProtectKernelTunables = true;
        ProtectKernelLogs = true;
        ProtectHostname = true;
        RestrictAddressFamilies = [
          "AF_UNIX" # host.sock, agent sockets, systemd, nix-daemon
          "AF_INET"
          "AF_INET6" # the dashboard, nix fetching flake inputs
          "AF_NETLINK" # machinectl and nixos-container query links
        ];
      };
    };

    networking.firewall = lib.mkIf cfg.openFirewall {
      allowedTCPPorts = [
        cfg.dashboardPort
      ]
      ++ lib.optional cfg.manager.enable hlib.managerPort
      ++ map hlib.agentPort cfg.firewallAgents;
    };

    # database.createLocally: the role and database `hyperhive`, owned by the role.
    # Remote hosts also need a listen address, pg_hba lines, the firewall port and a
    # password for the role (docs/nixos.md, "A hive on several hosts"); this sets up only
    # the local side.
    services.postgresql = lib.mkIf cfg.database.createLocally {
      enable = true;
      ensureDatabases = [ localDatabase ];
      ensureUsers = [
        {
          name = localDatabase;
          ensureDBOwnership = true;
        }
      ];
      # hive-c0re runs as root and connects through the socket: peer authentication with
      # root mapped to the hyperhive role, for this database only. These lines come before
      # nixpkgs' defaults (which it appends with mkAfter), so they match first.
      identMap = ''
        hyperhive root ${localDatabase}
      '';
      authentication = ''
        local ${localDatabase} ${localDatabase} peer map=hyperhive
      '';
    };
  };
}

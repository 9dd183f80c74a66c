# The manager container hm1nd, declared in the host configuration (not destroyable, not
# built from an applied repo). Imported by ./hyperhive.nix.
#
# Bind mounts (SPEC §3), host -> container:
#   /run/hyperhive/manager            -> /run/hive      its broker socket only
#   <stateDir>/proposed               -> /agents        RW: the proposed repos only
#                                                       (/agents/<name>/agent.nix); no
#                                                       agent's claude/ or state/
#   <stateDir>/applied                -> /applied       RO: what is deployed
#   <stateDir>/agents/manager/claude  -> /root/.claude  its Claude credentials
#   <stateDir>/agents/manager/state   -> /state         its notes and events db
{
  config,
  lib,
  ...
}:
let
  inherit (lib) types;

  hlib = import ./lib.nix;
  cfg = config.services.hyperhive;
  mcfg = cfg.manager;

  managerRoot = "${cfg.stateDir}/agents/${hlib.managerName}";
in
{
  options.services.hyperhive.manager = {
    enable = lib.mkOption {
      type = types.bool;
      default = true;
      example = false;
      description = ''
        Run the manager agent in the declarative container `hm1nd`. Without it nobody
        can propose configuration changes; the operator can still spawn agents.
      '';
    };

    model = lib.mkOption {
      type = types.str;
      default = "sonnet";
      example = "opus";
      description = "Default claude model of the manager (its web UI can override it).";
    };

    webHost = lib.mkOption {
      type = types.str;
      default = "127.0.0.1";
      example = "0.0.0.0";
      description = ''
        Bind address of the manager's web UI (port 8000). The container shares the host's
        network, so loopback is reachable from the host only.
      '';
    };

    extraConfig = lib.mkOption {
      type = types.deferredModule;
      default = { };
      example = lib.literalExpression ''
        { pkgs, ... }: { environment.systemPackages = [ pkgs.ripgrep ]; }
      '';
      description = ''
        A NixOS module merged into the manager container's configuration, e.g. packages
        its claude may use from the Bash tool.
      '';
    };
  };

  config = lib.mkIf (cfg.enable && mcfg.enable) {
    systemd.tmpfiles.settings.hyperhive-manager = {
      "${managerRoot}/claude".d = {
        mode = "0700";
      };
      "${managerRoot}/state".d = {
        mode = "0700";
      };
      # hive-c0re creates it too; tmpfiles makes it exist before either unit starts, so
      # the bind source is there even on the very first boot.
      "/run/hyperhive/manager".d = {
        mode = "0755";
      };
    };

    containers.${hlib.managerContainer} = {
      autoStart = true;
      # Share the host's network namespace: the manager's web UI must be reachable from
      # the host, and the broker is reached through the socket anyway.
      privateNetwork = false;
      # A user namespace: the manager's root is an unprivileged host uid (and not uid 0,
      # a trusted user, on the host's nix-daemon socket). docs/security.md, "User
      # namespaces".
      privateUsers = "pick";
      # Every bind idmapped, so the manager's root owns the host-root-owned files it
      # edits and creates files owned by host root (the daemon's git sees the same
      # owners as before). bindMounts has no option for it; nixos-containers joins
      # hostPath:mountPoint into --bind=, so the mount option rides on the mount point.
      bindMounts = builtins.mapAttrs (name: bind: bind // { mountPoint = "${name}:idmap"; }) {
        "/run/hive" = {
          hostPath = "/run/hyperhive/manager";
          isReadOnly = false;
        };
        "/agents" = {
          # The proposed repos' own tree (hive-c0re moves an older layout's
          # agents/<name>/config here at start-up), never the agents/ tree.
          hostPath = "${cfg.stateDir}/proposed";
          isReadOnly = false;
        };
        "/applied" = {
          hostPath = "${cfg.stateDir}/applied";
          isReadOnly = true;
        };
        "/root/.claude" = {
          hostPath = "${managerRoot}/claude";
          isReadOnly = false;
        };
        "/state" = {
          hostPath = "${managerRoot}/state";
          isReadOnly = false;
        };
      };
      config = {
        imports = cfg.containerModules ++ [ mcfg.extraConfig ];
        hyperhive = {
          name = hlib.managerName;
          role = "manager";
          port = hlib.managerPort;
          inherit (mcfg) model webHost;
          inherit (cfg) operatorPronouns;
        };
        system.stateVersion = lib.mkDefault config.system.stateVersion;
      };
    };

    systemd.services."container@${hlib.managerContainer}" = {
      # The socket directory is created by hive-c0re (RuntimeDirectory); start the
      # container after it so /run/hive is never bound from a missing source.
      after = [ "hive-c0re.service" ];
      wants = [ "hive-c0re.service" ];
      serviceConfig =
        lib.optionalAttrs (cfg.agentMemoryMax != null) { MemoryMax = cfg.agentMemoryMax; }
        // lib.optionalAttrs (cfg.agentCpuQuota != null) { CPUQuota = cfg.agentCpuQuota; };
    };
  };
}

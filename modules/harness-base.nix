# The base of every agent container (sub-agents h-<name> and the manager hm1nd).
#
# An agent's own agent.nix is imported next to this module; it sets `hyperhive.*` and
# adds packages. The container is the blast radius (SPEC §1): everything in here runs as
# the container's root, and nothing in here can reach the host beyond the three bind
# mounts the host sets up (/run/hive, /root/.claude, /state; plus /agents and /applied for
# the manager).
#
# This file is a plain NixOS module. The flake's `nixosModules.harness-base` wraps it
# with the overlays that provide `pkgs.hyperhive`, `pkgs.hive-forge` and an unstable
# `pkgs.claude-code`.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) types;

  hlib = import ./lib.nix;
  cfg = config.hyperhive;

  binary = if cfg.role == "manager" then "hive-m1nd" else "hive-ag3nt";

  mcpServerModule = {
    options = {
      command = lib.mkOption {
        type = types.str;
        example = lib.literalExpression ''"''${pkgs.mcp-server-fetch}/bin/mcp-server-fetch"'';
        description = "Executable of the stdio MCP server.";
      };
      args = lib.mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "--read-only" ];
        description = "Arguments passed to {option}`command`.";
      };
      env = lib.mkOption {
        type = types.attrsOf types.str;
        default = { };
        example = {
          LOG_LEVEL = "warning";
        };
        description = ''
          Extra environment for the server. It ends up in a file under /run/hive and in
          the harness's environment: do not put secrets here, read them from /state.
        '';
      };
      allowedTools = lib.mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "mcp__fetch__fetch" ];
        description = ''
          Tools of this server claude may call, spelled `mcp__<key>__<tool>`.
          Tools not listed are unavailable to a headless agent.
        '';
      };
    };
  };
in
{
  options.hyperhive = {
    name = lib.mkOption {
      type = types.str;
      example = "alice";
      description = ''
        This agent's name: 1-9 characters, a lowercase letter first, then lowercase
        letters, digits or `-`; `manager` for the manager. Set by the identity module
        from hyperhive-identity.json; do not set it in agent.nix.
      '';
    };

    role = lib.mkOption {
      type = types.enum [
        "agent"
        "manager"
      ];
      default = "agent";
      description = ''
        `agent` runs `hive-ag3nt`, `manager` runs `hive-m1nd` (same code, manager tools
        and prompt). Set by the identity module.
      '';
    };

    port = lib.mkOption {
      type = types.port;
      default = hlib.agentPort cfg.name;
      defaultText = lib.literalExpression ''
        if name == "manager" then 8000 else 8100 + fnv1a32 name % 900
      '';
      example = 8342;
      description = ''
        Port of this agent's web UI. It follows from the name; the identity module sets
        it to the port the daemon computed, and an assertion checks both agree.
      '';
    };

    model = lib.mkOption {
      type = types.str;
      default = "haiku";
      example = "sonnet";
      description = ''
        Default claude model (HIVE_DEFAULT_MODEL). The web UI's `/model <name>`
        overrides it at runtime until the override file in /state is removed.
      '';
    };

    allowedRecipients = lib.mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "bob"
        "carol"
      ];
      description = ''
        Agents this agent may message; empty means anyone. The manager and the operator
        are always allowed. Enforced by the host daemon, which reads it from
        /etc/hyperhive/agent.json of the built system, never inside the container.
      '';
    };

    extraMcpServers = lib.mkOption {
      type = types.attrsOf (types.submodule mcpServerModule);
      default = { };
      example = lib.literalExpression ''
        {
          fetch = {
            command = "''${pkgs.mcp-server-fetch}/bin/mcp-server-fetch";
            allowedTools = [ "mcp__fetch__fetch" ];
          };
        }
      '';
      description = ''
        Extra MCP servers merged into claude's MCP config next to the built-in
        `hyperhive` server. A key named `hyperhive` is ignored.
      '';
    };

    operatorPronouns = lib.mkOption {
      type = types.str;
      default = "they/them";
      example = "she/her";
      description = "How the system prompt refers to the operator.";
    };

    rateLimitSleep = lib.mkOption {
      type = types.ints.unsigned;
      default = 300;
      example = 60;
      description = "Seconds to wait after a rate-limited turn before retrying the message.";
    };

    webHost = lib.mkOption {
      type = types.str;
      default = "127.0.0.1";
      example = "0.0.0.0";
      description = ''
        Bind address of this agent's web UI. Containers share the host's network
        namespace, so the loopback default is reachable from the host and nowhere else.
      '';
    };

    package = lib.mkPackageOption pkgs "hyperhive" {
      extraDescription = "It provides `hive-ag3nt` and `hive-m1nd`.";
    };

    forgePackage = lib.mkPackageOption pkgs "hive-forge" {
      extraDescription = "The `hive-forge` CLI, on every agent's PATH.";
    };

    claudePackage = lib.mkPackageOption pkgs "claude-code" {
      extraDescription = ''
        The claude CLI the harness runs each turn (from nixpkgs-unstable, through the
        claude-unstable overlay). The tests put a stand-in here.
      '';
    };
  };

  config = {
    # Both options exist. isNspawnContainer is the specific one: it implies
    # boot.isContainer and adds what systemd-nspawn needs (the generic container profile
    # alone does not), which is what nixos-container runs us in.
    boot.isNspawnContainer = true;

    # Each container evaluates its own nixpkgs: the host's allowUnfree does not reach it.
    # The predicate admits claude-code and nothing else (one definition, in lib.nix).
    nixpkgs.config.allowUnfreePredicate = hlib.allowUnfreePredicate;

    networking.hostName = lib.mkDefault (hlib.containerName cfg.name);
    networking.useDHCP = false;
    # Containers share the host's network namespace (PRIVATE_NETWORK=0): a firewall
    # here would rewrite the host's rules (or fail without CAP_NET_ADMIN).
    networking.firewall.enable = false;

    # The NixOS manual is rebuilt from every option on each change: slow, and an agent
    # has no use for it. Man pages stay.
    documentation.nixos.enable = lib.mkDefault false;

    environment.systemPackages = [
      cfg.forgePackage
      cfg.claudePackage
      pkgs.git
    ];

    # What the host daemon needs to know about the built system (SPEC §5): it reads
    # <toplevel>/etc/hyperhive/agent.json after a build, so an agent cannot change its
    # allow-list at runtime.
    environment.etc."hyperhive/agent.json".text = builtins.toJSON {
      inherit (cfg)
        name
        role
        port
        model
        allowedRecipients
        ;
    };

    systemd.services.${binary} = {
      description = "hyperhive ${cfg.role} harness (${cfg.name})";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" ];
      # /run/current-system/sw last: packages an agent adds in agent.nix become visible
      # to claude's Bash tool without a harness change, and after a rebuild without a
      # unit change.
      path = [
        cfg.claudePackage
        pkgs.git
        cfg.forgePackage
        "/run/current-system/sw"
      ];
      # Escaped: systemd expands %-specifiers in Environment= (MCP server args and env,
      # pronouns, model names are the agent's own strings).
      environment =
        hlib.systemdEnvironment (hlib.harnessEnvironment {
          inherit cfg;
          claudeBin = lib.getExe cfg.claudePackage;
        })
        // {
          # No User=: systemd sets no HOME, and claude keeps its credentials and sessions
          # under ~/.claude (the bind-mounted /root/.claude).
          HOME = "/root";
          # The store is read-only; claude must not try to replace itself.
          DISABLE_AUTOUPDATER = "1";
        };
      serviceConfig = {
        ExecStart = "${lib.getExe' cfg.package binary} serve";
        WorkingDirectory = hlib.container.stateDir;
        Restart = "always";
        RestartSec = 2;
        # No sandboxing options here on purpose: claude's Bash tool is the agent's
        # hands and must be able to do what root in the container can do. The
        # container is the boundary (SPEC §1, "blast radius is the container").
      };
    };

    warnings = lib.optional (cfg.extraMcpServers ? hyperhive) ''
      hyperhive.extraMcpServers.hyperhive is ignored: that key is the built-in broker server.
      Rename the entry.
    '';

    assertions = [
      {
        assertion =
          if cfg.role == "manager" then
            cfg.name == hlib.managerName
          else
            hlib.isValidAgentName cfg.name;
        message = ''
          hyperhive.name = "${cfg.name}" does not fit hyperhive.role = "${cfg.role}": an agent's
          name is 1-9 characters, a lowercase letter first, then lowercase letters, digits or
          '-', and not one of ${toString hlib.reservedNames}; the manager's name is "manager".
          Fix hyperhive-identity.json (or the daemon that wrote it).
        '';
      }
      {
        assertion = cfg.port == hlib.agentPort cfg.name;
        message = ''
          hyperhive.port = ${toString cfg.port}, but the port of "${cfg.name}" is
          ${toString (hlib.agentPort cfg.name)} (8100 + fnv1a32(name) % 900, manager 8000).
          The daemon and the Nix side disagree on the port hash; remove hyperhive.port from
          agent.nix, or fix the identity file.
        '';
      }
      {
        assertion = lib.all (
          r: hlib.isValidAgentName r || r == hlib.managerName || r == "operator"
        ) cfg.allowedRecipients;
        message = ''
          hyperhive.allowedRecipients contains a name that is not an agent name:
          ${toString cfg.allowedRecipients}. List agent names only (the manager and the
          operator are always allowed).
        '';
      }
    ];
  };
}

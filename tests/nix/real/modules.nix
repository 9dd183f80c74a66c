# Our NixOS modules through the REAL nixpkgs module system (lib.evalModules from
# nixpkgs.lib), for x86_64-linux and aarch64-linux. Needs the nixpkgs `lib` sources (see
# docs/nixos.md, "Evaluating against the real poetry2nix and nixpkgs lib"). Not in CI.
#
# The host module is evaluated as the flake exports it (nixosModules.default, the wrapper
# included), the manager container's configuration and an agent's system (harness-base +
# the identity module made from a daemon-written identity + the template's agent.nix) as
# modules of their own. NixOS options outside ours are declared by `nixosStub` below with
# the types nixpkgs gives them where it matters (lists merge, attrs merge, bools and
# strings conflict) and freeform elsewhere. So option types, defaults, mkIf/mkMerge/
# mkDefault priorities, mkPackageOption and the assertions are the real ones; what needs
# nixpkgs itself (packages, the rest of NixOS) is `nix flake check`'s job.
#
#   nix-instantiate --eval --strict --json --store dummy:// tests/nix/real/modules.nix \
#     --arg nixpkgsLib /path/to/nixpkgs.lib --argstr system aarch64-linux
{
  nixpkgsLib,
  system ? "x86_64-linux",
  # Host settings merged into services.hyperhive (e.g. { backend = "nspawn"; }).
  settings ? { },
  stateVersion ? "25.11",
}:
let
  lib = import (nixpkgsLib + "/lib");
  inherit (lib) types mkOption;
  hlib = import ../../../modules/lib.nix;

  fakeDrv = pname: mainProgram: {
    type = "derivation";
    name = "${pname}-0";
    inherit pname;
    outPath = "/nix/store/00000000000000000000000000000000-${pname}-0";
    meta.mainProgram = mainProgram;
  };
  pkgs = {
    inherit lib;
    stdenv.hostPlatform = lib.systems.elaborate system;
    git = fakeDrv "git" "git";
    hyperhive = fakeDrv "hyperhive" "hive-c0re";
    hive-forge = fakeDrv "hive-forge" "hive-forge";
    claude-code = fakeDrv "claude-code" "claude";
    # What the template's agent.nix adds.
    ripgrep = fakeDrv "ripgrep" "rg";
    jq = fakeDrv "jq" "jq";
    callPackage = path: _args: fakeDrv (baseNameOf (toString path)) "hive-c0re";
    # What checks/multihost.nix (the VM test) uses.
    python3 = fakeDrv "python3" "python3";
    curl = fakeDrv "curl" "curl";
    writeScriptBin = name: _text: fakeDrv name name;
    writeText = name: _text: fakeDrv name name;
    testers.runNixOSTest = args: args;
  };

  anything = types.attrsOf types.anything;
  nixosStub = {
    options = {
      assertions = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      warnings = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      system.stateVersion = mkOption {
        type = types.str;
        default = stateVersion;
      };
      boot.enableContainers = mkOption {
        type = types.bool;
        default = false;
      };
      boot.isNspawnContainer = mkOption {
        type = types.bool;
        default = false;
      };
      environment.systemPackages = mkOption {
        type = types.listOf types.package;
        default = [ ];
      };
      environment.etc = mkOption {
        type = types.attrsOf (
          types.submodule {
            options.text = mkOption { type = types.lines; };
            options.mode = mkOption {
              type = types.str;
              default = "symlink";
            };
          }
        );
        default = { };
      };
      virtualisation = mkOption {
        type = types.submodule { freeformType = anything; };
        default = { };
      };
      nix.settings = mkOption {
        type = types.submodule {
          freeformType = anything;
          options.experimental-features = mkOption {
            type = types.listOf types.str;
            default = [ ];
          };
        };
        default = { };
      };
      nix.registry = mkOption {
        type = types.attrsOf (types.submodule { freeformType = anything; });
        default = { };
      };
      nixpkgs = mkOption {
        type = types.submodule { freeformType = anything; };
        default = { };
      };
      networking = mkOption {
        type = types.submodule {
          freeformType = anything;
          options.hostName = mkOption {
            type = types.str;
            default = "nixos";
          };
          options.useDHCP = mkOption {
            type = types.bool;
            default = true;
          };
          options.firewall.enable = mkOption {
            type = types.bool;
            default = true;
          };
          options.firewall.allowedTCPPorts = mkOption {
            type = types.listOf types.port;
            default = [ ];
          };
        };
        default = { };
      };
      # What database.createLocally sets, with nixpkgs' types (lines concatenate).
      services.postgresql = {
        enable = mkOption {
          type = types.bool;
          default = false;
        };
        ensureDatabases = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
        ensureUsers = mkOption {
          type = types.listOf (types.submodule { freeformType = anything; });
          default = [ ];
        };
        identMap = mkOption {
          type = types.lines;
          default = "";
        };
        authentication = mkOption {
          type = types.lines;
          default = "";
        };
        settings = mkOption {
          type = types.submodule { freeformType = anything; };
          default = { };
        };
        enableTCPIP = mkOption {
          type = types.bool;
          default = false;
        };
      };
      documentation.nixos.enable = mkOption {
        type = types.bool;
        default = true;
      };
      systemd.tmpfiles.settings = mkOption {
        type = types.attrsOf (types.attrsOf (types.attrsOf anything));
        default = { };
      };
      systemd.services = mkOption {
        type = types.attrsOf (
          types.submodule {
            freeformType = anything;
            options = {
              environment = mkOption {
                type = types.attrsOf (
                  types.nullOr (
                    types.oneOf [
                      types.str
                      types.path
                      types.package
                    ]
                  )
                );
                default = { };
              };
              path = mkOption {
                type = types.listOf (types.either types.package types.str);
                default = [ ];
              };
              serviceConfig = mkOption {
                type = anything;
                default = { };
              };
              wantedBy = mkOption {
                type = types.listOf types.str;
                default = [ ];
              };
              after = mkOption {
                type = types.listOf types.str;
                default = [ ];
              };
              wants = mkOption {
                type = types.listOf types.str;
                default = [ ];
              };
            };
          }
        );
        default = { };
      };
      containers = mkOption {
        type = types.attrsOf (
          types.submodule {
            options = {
              autoStart = mkOption {
                type = types.bool;
                default = false;
              };
              privateNetwork = mkOption {
                type = types.bool;
                default = false;
              };
              privateUsers = mkOption {
                type = types.either types.ints.u32 (
                  types.enum [
                    "no"
                    "identity"
                    "pick"
                  ]
                );
                default = "no";
              };
              bindMounts = mkOption {
                type = types.attrsOf (
                  types.submodule {
                    options.hostPath = mkOption { type = types.nullOr types.str; };
                    # nixpkgs defaults it to the attribute name; ours carries ":idmap".
                    options.mountPoint = mkOption { type = types.str; };
                    options.isReadOnly = mkOption {
                      type = types.bool;
                      default = true;
                    };
                  }
                );
                default = { };
              };
              # In nixpkgs a whole NixOS evaluation; evaluated below on its own.
              config = mkOption {
                type = types.deferredModule;
                default = { };
              };
            };
          }
        );
        default = { };
      };
    };
  };

  # The flake's outputs with the real lib and stand-in package sets.
  flake = import ../../../flake.nix;
  outputs = flake.outputs {
    self = outputs // {
      outPath = toString ../../..;
    };
    nixpkgs = {
      # nixosSystem lives in nixpkgs' flake, not in lib: here it returns its arguments,
      # whose modules are evaluated below.
      lib = lib // {
        nixosSystem = args: args;
      };
      legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (_: pkgs);
    };
    nixpkgs-unstable = { };
    poetry2nix = { };
  };

  eval =
    modules:
    lib.evalModules {
      modules = [
        nixosStub
        { _module.args.pkgs = pkgs; }
      ]
      ++ modules;
    };

  failing = cfg: map (a: a.message) (lib.filter (a: !a.assertion) cfg.assertions);

  host = eval [
    outputs.nixosModules.default
    {
      services.hyperhive = {
        enable = true;
      }
      // settings;
    }
  ];
  hostCfg = host.config;

  # The manager container's configuration, as nixpkgs would evaluate `containers.hm1nd.config`.
  manager = eval (
    [ hostCfg.containers.hm1nd.config ]
    ++ [
      # nixosModules.harness-base's overlays need nixpkgs; the module itself is imported.
      { nixpkgs.overlays = lib.mkForce [ ]; }
    ]
  );

  # An agent's system from a daemon-written identity, as the template's flake builds it.
  identity = {
    name = "alice";
    role = "agent";
    port = hlib.agentPort "alice";
    inherit system;
  };
  agentArgs = outputs.lib.mkAgentSystem {
    inherit identity;
    modules = [ (hlib.agentTemplateDir + "/agent.nix") ];
  };
  agent = eval (agentArgs.modules ++ [ { nixpkgs.overlays = lib.mkForce [ ]; } ]);

  # Issue 17: the two hosts of examples/two-hosts as its flake.nix builds them, and a
  # refused URL.
  example = ../../../examples/two-hosts;
  exampleHost =
    module:
    (eval [
      outputs.nixosModules.default
      (example + "/agents-no-db.nix")
      module
    ]).config;
  alpha = exampleHost (example + "/alpha.nix");
  beta = exampleHost (example + "/beta.nix");
  refused =
    (eval [
      outputs.nixosModules.default
      {
        services.hyperhive = {
          enable = true;
          database.url = "postgresql://hyperhive:pw@alpha.lan/hyperhive";
        };
      }
    ]).config;
  # The VM test's nodes (checks/multihost.nix) as its driver would evaluate them.
  vmTest = import ../../../checks/multihost.nix {
    inherit pkgs;
    self = outputs;
  };
  vmNode = name: (eval [ vmTest.nodes.${name} ]).config;
  vmDb =
    (eval [
      vmTest.nodes.db
      {
        _module.args.nodes = lib.genAttrs [ "alpha" "beta" ] (n: {
          networking.primaryIPAddress = if n == "alpha" then "192.168.1.1" else "192.168.1.2";
        });
        services.postgresql.enableTCPIP = true;
      }
    ]).config;

  multihostView = cfg: {
    failedAssertions = failing cfg;
    inherit (cfg) warnings;
    environment = lib.filterAttrs (
      n: _: lib.elem n [
        "HYPERHIVE_DATABASE_URL"
        "HYPERHIVE_DATABASE_PASSWORD_FILE"
        "HYPERHIVE_HOST_NAME"
      ]
    ) cfg.systemd.services.hive-c0re.environment;
    inherit (cfg.systemd.services.hive-c0re) after wants;
    postgresql = {
      inherit (cfg.services.postgresql)
        enable
        ensureDatabases
        ensureUsers
        identMap
        authentication
        ;
    };
    containers = lib.attrNames cfg.containers;
  };

  unit = hostCfg.systemd.services.hive-c0re;
  harness = agent.config.systemd.services.hive-ag3nt;
in
{
  inherit system;
  host = {
    failedAssertions = failing hostCfg;
    inherit (hostCfg) warnings;
    enableContainers = hostCfg.boot.enableContainers;
    experimentalFeatures = hostCfg.nix.settings.experimental-features;
    package = hostCfg.services.hyperhive.package.pname or "?";
    packageDefaultText = host.options.services.hyperhive.package.defaultText.text or null;
    flakeRef = hostCfg.services.hyperhive.flakeRef;
    registry = hostCfg.nix.registry ? hyperhive;
    execStart = unit.serviceConfig.ExecStart;
    environment = unit.environment;
    serviceConfig = unit.serviceConfig;
    firewall = hostCfg.networking.firewall.allowedTCPPorts;
    containers = lib.mapAttrs (_: c: {
      inherit (c) autoStart privateNetwork privateUsers bindMounts;
    }) hostCfg.containers;
  };
  multihost = {
    alpha = multihostView alpha;
    beta = multihostView beta;
    refused = failing refused;
    vm = {
      alpha = multihostView (vmNode "alpha");
      beta = multihostView (vmNode "beta");
      dbAuthentication = vmDb.services.postgresql.authentication;
      inherit (vmTest) testScript;
    };
    inherit (alpha.networking.firewall) extraCommands;
    alphaFirewall = alpha.networking.firewall.interfaces;
    alphaPostgresSettings = alpha.services.postgresql.settings;
  };
  manager = {
    failedAssertions = failing manager.config;
    inherit (manager.config) warnings;
    inherit (manager.config.hyperhive) name role port;
    services = lib.attrNames manager.config.systemd.services;
  };
  agent = {
    failedAssertions = failing agent.config;
    inherit (agent.config) warnings;
    hostPlatform = agent.config.nixpkgs.hostPlatform;
    isNspawnContainer = agent.config.boot.isNspawnContainer;
    agentJson = builtins.fromJSON agent.config.environment.etc."hyperhive/agent.json".text;
    execStart = harness.serviceConfig.ExecStart;
    environment = harness.environment;
    systemPackages = map (p: p.pname) agent.config.environment.systemPackages;
  };
}

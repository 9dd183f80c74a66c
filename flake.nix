{
  description = "hyperhive: a swarm of Claude Code agents on one NixOS host, each in its own container";

  # Named branches; flake.lock pins the exact revisions (`nix flake lock`, docs/nixos.md).
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";
    # claude-code only: it is unfree and lags in stable (overlays/claude-unstable.nix).
    nixpkgs-unstable.url = "github:NixOS/nixpkgs/nixos-unstable";
    poetry2nix = {
      url = "github:nix-community/poetry2nix/master";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      nixpkgs-unstable,
      poetry2nix,
    }:
    let
      inherit (nixpkgs) lib;

      # Pure helpers (port hash, names, unfree predicate, env): no nixpkgs needed.
      hlib = import ./modules/lib.nix;

      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # The identity module of an agent container, from hyperhive-identity.json.
      identityModule =
        identity:
        { lib, ... }:
        {
          hyperhive = {
            inherit (identity) name role port;
          }
          // lib.optionalAttrs (identity ? operator_pronouns) {
            operatorPronouns = identity.operator_pronouns;
          };
          nixpkgs.hostPlatform = lib.mkDefault (identity.system or "x86_64-linux");
        };

      # One agent's NixOS system: harness-base + the identity + the agent's modules.
      mkAgentSystem =
        {
          identity,
          modules ? [ ],
        }:
        lib.nixosSystem {
          modules = [
            self.nixosModules.harness-base
            (identityModule identity)
          ]
          ++ modules;
        };

      # What an agent flake's `nixosConfigurations` is: one attribute, named after the
      # container (h-<name>, or hm1nd for the manager), which is what the daemon builds.
      mkAgentConfigurations =
        {
          identity,
          modules ? [ ],
        }:
        {
          ${hlib.containerName (if identity.role == "manager" then hlib.managerName else identity.name)} =
            mkAgentSystem { inherit identity modules; };
        };

      # Python with the main and dev groups (the project's own packages come from the
      # working tree, via PYTHONPATH). Main is needed too: the tests import aiohttp,
      # pydantic, jinja2 and mcp.
      devEnvFor =
        pkgs:
        let
          p2n = poetry2nix.lib.mkPoetry2Nix { inherit pkgs; };
        in
        p2n.mkPoetryEnv {
          projectDir = ./.;
          groups = [
            "main"
            "dev"
          ];
          preferWheels = true;
          overrides = (import ./pkgs/hyperhive/poetry-overrides.nix).overrides { inherit p2n pkgs; };
        };
    in
    {
      lib = hlib // {
        inherit identityModule mkAgentSystem mkAgentConfigurations;
      };

      overlays = {
        default = import ./overlays/default.nix { inherit poetry2nix; };
        claude-unstable = import ./overlays/claude-unstable.nix { inherit nixpkgs-unstable; };
      };

      nixosModules = {
        # The host module. The wrapper supplies what only the flake knows.
        hyperhive =
          {
            config,
            lib,
            pkgs,
            ...
          }:
          {
            imports = [ ./modules/hyperhive.nix ];
            config = lib.mkMerge [
              {
                services.hyperhive = {
                  # Built against the host's nixpkgs, like the manager container.
                  package = lib.mkDefault (pkgs.callPackage ./pkgs/hyperhive { inherit poetry2nix; });
                  # Agents are built from this very flake, from its store path: no
                  # network, and always the same revision as the host.
                  flakeRef = lib.mkDefault "path:${self}";
                  containerModules = [ self.nixosModules.harness-base ];
                };
              }
              (lib.mkIf config.services.hyperhive.enable {
                # So `inputs.hyperhive.url = "hyperhive"` in agent flakes (and
                # `nix flake init -t hyperhive#agent`) resolve to this flake.
                nix.registry.hyperhive.flake = lib.mkDefault self;
              })
            ];
          };
        default = self.nixosModules.hyperhive;

        # Imported by every agent container. Each container evaluates its own nixpkgs,
        # so the overlays come with the module.
        harness-base = {
          imports = [ ./modules/harness-base.nix ];
          nixpkgs.overlays = [
            self.overlays.default
            self.overlays.claude-unstable
          ];
        };
      };

      packages = forAllSystems (
        pkgs:
        let
          hyperhive = pkgs.callPackage ./pkgs/hyperhive { inherit poetry2nix; };
        in
        {
          inherit hyperhive;
          hive-forge = pkgs.callPackage ./pkgs/hive-forge { inherit hyperhive; };
          default = hyperhive;
        }
      );

      templates = {
        agent = {
          path = hlib.agentTemplateDir;
          description = "A hyperhive agent's container configuration (flake.nix + agent.nix)";
          welcomeText = ''
            Edit agent.nix. Without hyperhive-identity.json this flake builds an example
            agent; hive-c0re writes that file for the agents it manages (docs/nixos.md).
          '';
        };
        default = self.templates.agent;
      };

      checks = forAllSystems (
        pkgs:
        let
          inherit (pkgs.stdenv.hostPlatform) system;
          inherit (self.packages.${system}) hyperhive hive-forge;
        in
        {
          inherit hyperhive hive-forge;
          pytest = pkgs.callPackage ./checks/pytest.nix {
            inherit hyperhive;
            # The overlay reads only prev.stdenv, so it can be applied to pkgs directly.
            inherit (self.overlays.claude-unstable pkgs pkgs) claude-code;
            devEnv = devEnvFor pkgs;
            src = lib.cleanSource ./.;
          };
          # The template as the daemon would build it, with an example identity.
          agent-template =
            (mkAgentSystem {
              identity = {
                name = "example";
                role = "agent";
                port = hlib.agentPort "example";
                inherit system;
              };
              modules = [ (hlib.agentTemplateDir + "/agent.nix") ];
            }).config.system.build.toplevel;
          lifecycle = import ./checks/lifecycle.nix {
            inherit pkgs self mkAgentSystem;
          };
          # Two hosts on one PostgreSQL database (issue 17).
          multihost = import ./checks/multihost.nix { inherit pkgs self; };
        }
      );

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            (devEnvFor pkgs)
            pkgs.poetry
            pkgs.git
            pkgs.nixfmt
          ];
          # The packages themselves come from the working tree, not from the store.
          shellHook = ''
            export PYTHONPATH="$PWD/pkgs/hyperhive:$PWD/pkgs/hive-forge''${PYTHONPATH:+:$PYTHONPATH}"
          '';
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt);
    };
}

# One hyperhive agent's container. Edit agent.nix, not this file.
#
# The same files serve two purposes:
# - `nix flake init -t hyperhive#agent` gives you this starter;
# - hive-c0re seeds every new agent's proposed repo with exactly these files (it copies
#   every file of HYPERHIVE_AGENT_TEMPLATE_DIR, which the host module points here).
#
# Contract with hive-c0re (docs/nixos.md, "The agent flake"):
# - The applied repo also holds hyperhive-identity.json, written by the daemon and
#   tracked by git (a flake only sees tracked files):
#     {"name": "alice", "port": 8342, "role": "agent", "system": "x86_64-linux"}
#   role is "agent" or "manager"; system is the host's (the daemon writes it; a file
#   without it builds for x86_64-linux); optional key: "operator_pronouns".
# - The daemon builds `nixosConfigurations.<container>` (h-<name>; hm1nd for the
#   manager) with `--override-input hyperhive <HYPERHIVE_FLAKE_REF>`, so the url below is
#   only used when you build this flake by hand.
# - The system is hyperhive's harness-base + ./agent.nix + an identity module made from
#   the JSON file (name, role, port; the port is checked against the name's hash).
{
  description = "A hyperhive agent container";

  # An indirect reference: the hyperhive host module registers the `hyperhive` flake in
  # the host's registry. Elsewhere, replace it with your hyperhive flake reference.
  inputs.hyperhive.url = "hyperhive";

  outputs =
    { hyperhive, ... }:
    let
      identityFile = ./hyperhive-identity.json;
      # Without an identity file (a fresh `nix flake init`) build an example agent, so
      # `nix flake check` works before the daemon has seen this repo.
      identity =
        if builtins.pathExists identityFile then
          builtins.fromJSON (builtins.readFile identityFile)
        else
          {
            name = "example";
            role = "agent";
            port = hyperhive.lib.agentPort "example";
          };
    in
    {
      nixosConfigurations = hyperhive.lib.mkAgentConfigurations {
        inherit identity;
        modules = [ ./agent.nix ];
      };
    };
}

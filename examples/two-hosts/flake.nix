# Two hosts, one hive (docs/nixos.md, "A hive on several hosts"): alpha holds the hive's
# PostgreSQL database and runs the manager, beta runs agents of its own against alpha's
# database. Copy this directory into your own configuration repository; set the
# addresses in network.nix and add each machine's hardware configuration.
{
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";
    hyperhive.url = "github:OWNER/hyperhive"; # where your copy of this repository lives
  };

  outputs =
    { nixpkgs, hyperhive, ... }:
    let
      host =
        module:
        nixpkgs.lib.nixosSystem {
          modules = [
            hyperhive.nixosModules.default
            ./agents-no-db.nix
            module
            # ./hardware-configuration.nix of that machine, users, ssh, ...
          ];
        };
    in
    {
      nixosConfigurations = {
        alpha = host ./alpha.nix;
        beta = host ./beta.nix;
      };
    };
}

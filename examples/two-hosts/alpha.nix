# alpha: the hive's database (PostgreSQL, created by the module) and the manager.
{ lib, ... }:
let
  net = import ./network.nix;
in
{
  networking.hostName = "alpha";
  system.stateVersion = "25.11";

  services.hyperhive = {
    enable = true;
    # services.postgresql with a `hyperhive` role and database; hive-c0re connects
    # through /run/postgresql as root, mapped to that role (no password on this host).
    database.createLocally = true;
  };

  services.postgresql = {
    settings = {
      # loopback and the hive network only
      listen_addresses = lib.mkForce "localhost,${net.alpha}";
      port = net.databasePort;
      # PostgreSQL's default since 14; stated because pg_hba below relies on it
      password_encryption = "scram-sha-256";
    };
    # beta, and only beta, logs in as hyperhive to the hyperhive database with the
    # role's password. These lines come before nixpkgs' defaults, so they match first.
    authentication = ''
      host hyperhive hyperhive ${net.beta}/32 scram-sha-256
    '';
  };

  # The database port on the hive network only. (Agents share this host's network
  # namespace: agents-no-db.nix keeps them off the port.)
  networking.firewall.interfaces.${net.interface}.allowedTCPPorts = [ net.databasePort ];
}

# beta: agents of its own, on alpha's database. No manager: one hive has one, alpha's.
let
  net = import ./network.nix;
in
{
  networking.hostName = "beta";
  system.stateVersion = "25.11";

  services.hyperhive = {
    enable = true;
    manager.enable = false;
    database = {
      # No password here: the URL ends up in the world-readable store.
      url = "postgresql://hyperhive@${net.alpha}:${toString net.databasePort}/hyperhive";
      # Root-only (0600), outside the store: the password of alpha's hyperhive role
      # (docs/nixos.md says how to set it). A secrets tool (agenix, sops-nix) can put it
      # there; its decrypted path goes here as a string.
      passwordFile = "/var/lib/hyperhive-secrets/database-password";
    };
  };
}

# The change the VM test proposes as an apply_commit: agent.nix plus a marker file, so
# the test can see the approved commit deployed inside the container.
{ pkgs, ... }:
{
  hyperhive.model = "haiku";
  hyperhive.allowedRecipients = [ ];
  hyperhive.claudePackage = pkgs.writeScriptBin "claude" (
    "#!${pkgs.python3}/bin/python3\n" + builtins.readFile ./stand-in-claude.py
  );
  environment.etc."hyperhive-test-marker".text = "applied\n";
  system.stateVersion = "25.11";
}

# The VM test's agent.nix (seeded by the test's template instead of the real one): the
# real template's defaults plus a stand-in claude, because the VM has no network and no
# Anthropic account. stand-in-claude.py is seeded next to this file.
{ pkgs, ... }:
{
  hyperhive.model = "haiku";
  hyperhive.allowedRecipients = [ ];
  hyperhive.claudePackage = pkgs.writeScriptBin "claude" (
    "#!${pkgs.python3}/bin/python3\n" + builtins.readFile ./stand-in-claude.py
  );
  system.stateVersion = "25.11";
}

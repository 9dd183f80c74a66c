# This agent's NixOS configuration: a plain NixOS module, the entry point the manager
# edits (in /agents/<name>) and the operator approves, one commit at a time.
#
# hyperhive's harness-base is imported next to it and already provides the harness,
# claude, git and hive-forge. Everything here ends up inside this agent's container only.
{ pkgs, ... }:
{
  # claude model when nobody has picked one in the web UI (`/model <name>`).
  hyperhive.model = "haiku";

  # Agents this one may message; empty means anyone. The manager and the operator are
  # always allowed. Enforced by the host daemon, not inside the container.
  hyperhive.allowedRecipients = [ ];

  # Extra MCP servers for claude, next to the built-in `hyperhive` one:
  # hyperhive.extraMcpServers.fetch = {
  #   command = "${pkgs.mcp-server-fetch}/bin/mcp-server-fetch";
  #   allowedTools = [ "mcp__fetch__fetch" ];
  # };

  # Tools claude can use from its Bash tool.
  environment.systemPackages = [
    pkgs.ripgrep
    pkgs.jq
  ];

  system.stateVersion = "25.11";
}

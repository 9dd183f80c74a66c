# Keep agents off the database port, on every host of the hive.
#
# Agent containers (and the manager's) share the host's network namespace
# (PRIVATE_NETWORK=0), so an address-based firewall rule cannot tell an agent from
# hive-c0re: both connect from the same addresses. What differs is the uid: every
# container runs in a user namespace picked by systemd-nspawn (privateUsers = "pick",
# PRIVATE_USERS=pick), whose root is a host uid in nspawn's range 524288-1879048191,
# while hive-c0re runs as uid 0. So outgoing connections to the database port from that
# uid range are refused here, before they leave the host (loopback included).
#
# This is a second wall: the first is that no container can read the password file or
# the unix socket (/run/postgresql is not bound into any container), and pg_hba accepts
# only scram-sha-256 logins. With backend = "local" agents are root processes on the
# host and nothing here applies.
#
# The NixOS iptables firewall runs extraCommands at every (re)load; each rule is deleted
# first so reloads do not stack copies. With networking.nftables.enable, write the same
# rule as an nftables output chain (meta skuid 524288-1879048191 tcp dport 5432 reject).
let
  net = import ./network.nix;
  rule = "OUTPUT -p tcp --dport ${toString net.databasePort} -m owner --uid-owner 524288-1879048191 -j REJECT --reject-with tcp-reset";
in
{
  networking.firewall.extraCommands = ''
    for cmd in iptables ip6tables; do
      $cmd -D ${rule} 2>/dev/null || true
      $cmd -A ${rule}
    done
  '';
  networking.firewall.extraStopCommands = ''
    for cmd in iptables ip6tables; do
      $cmd -D ${rule} 2>/dev/null || true
    done
  '';
}

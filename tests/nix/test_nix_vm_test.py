"""checks/lifecycle.nix (the NixOS VM test) evaluated with stand-ins: it cannot run here
(no nixpkgs, no KVM), so this checks what the test is set up to prove. Run it on a Nix
host with KVM: `nix build .#checks.x86_64-linux.lifecycle -L` (docs/nixos.md).
"""

from __future__ import annotations

from typing import Any

from nixeval import NixEval

VM_TEST = """
let
  stubPkgs = {
    lib = { mkForce = x: x; };
    stdenv.hostPlatform.system = "x86_64-linux";
    runCommand = name: _: _: "/nix/store/0-${name}";
    writeText = name: _: "/nix/store/0-${name}";
    writeScript = name: _: "/nix/store/0-${name}";
    python3 = "/nix/store/0-python3";
    curl = "curl"; sqlite = "sqlite"; git = "git";
    testers.runNixOSTest = args: args;
  };
  self = {
    lib = import ./modules/lib.nix;
    outPath = "/nix/store/0-source";
    nixosModules.default = { };
    inputs = { };
  };
  test = import ./checks/lifecycle.nix {
    pkgs = stubPkgs;
    inherit self;
    mkAgentSystem = _: { config.system.build.toplevel = "/nix/store/0-system"; };
  };
  host = test.nodes.host { lib = stubPkgs.lib; pkgs = stubPkgs; };
in {
  inherit (test) testScript;
  nixSettings = host.nix.settings;
  dnsmasq = host.services.dnsmasq;
}
"""


def vm_test(nix_eval: NixEval) -> dict[str, Any]:
    result: dict[str, Any] = nix_eval(VM_TEST)
    return result


def test_host_has_no_flakes_of_its_own(nix_eval: NixEval) -> None:
    # The module must enable them (nixos-container runs `nix build --flake`); a VM that
    # enables them itself hides a host where every spawn fails.
    got = vm_test(nix_eval)
    assert "experimental-features" not in got["nixSettings"]
    assert "experimental-features = .*flakes' /etc/nix/nix.conf" in got["testScript"]


def test_agent_resolves_a_name_only_the_hosts_resolver_knows(nix_eval: NixEval) -> None:
    got = vm_test(nix_eval)
    assert got["dnsmasq"]["enable"] is True
    assert got["dnsmasq"]["settings"]["address"] == ["/api.hive.test/192.0.2.7"]
    script = got["testScript"]
    assert "grep -qx COPY_RESOLV_CONF=1 /etc/nixos-containers/h-alice.conf" in script
    assert "nixos-container run h-alice -- getent hosts api.hive.test" in script


# --- checks/multihost.nix: two hosts on one PostgreSQL (issue 17) --------------------

MULTIHOST = """
let
  stubPkgs = {
    lib = {
      attrNames = builtins.attrNames;
      mapAttrs = builtins.mapAttrs;
      concatMapStrings = f: list: builtins.concatStringsSep "" (map f list);
    };
    writeText = name: _: "/nix/store/0-${name}";
    writeScriptBin = name: _: "/nix/store/0-${name}";
    python3 = "/nix/store/0-python3";
    curl = "curl";
    testers.runNixOSTest = args: args;
  };
  self = {
    lib = import ./modules/lib.nix;
    nixosModules.default = "hyperhive-module";
  };
  test = import ./checks/multihost.nix { pkgs = stubPkgs; inherit self; };
  # paths as strings: JSON would copy a path into the (dummy) store
  node = name: let n = test.nodes.${name} { pkgs = stubPkgs; }; in
    n // { imports = map toString n.imports; };
  db = test.nodes.db {
    nodes = {
      alpha.networking.primaryIPAddress = "192.168.1.1";
      beta.networking.primaryIPAddress = "192.168.1.2";
    };
  };
in {
  inherit (test) name testScript;
  nodes = builtins.attrNames test.nodes;
  alpha = node "alpha";
  beta = node "beta";
  db = db.services.postgresql // { firewall = db.networking.firewall; };
}
"""


def multihost(nix_eval: NixEval) -> dict[str, Any]:
    result: dict[str, Any] = nix_eval(MULTIHOST)
    return result


def test_multihost_has_two_hosts_and_a_database_node(nix_eval: NixEval) -> None:
    got = multihost(nix_eval)
    assert got["nodes"] == ["alpha", "beta", "db"]
    for name in ("alpha", "beta"):
        node = got[name]
        assert node["networking"]["hostName"] == name
        hive = node["services"]["hyperhive"]
        assert hive["database"] == {
            "url": "postgresql://hyperhive@db:5432/hyperhive",
            "passwordFile": "/etc/hyperhive/db-password",
        }
        assert hive["manager"]["enable"] is False
        # the password file: root-only copy, not a symlink into the store
        assert node["environment"]["etc"]["hyperhive/db-password"]["mode"] == "0600"
        # the example's rule that keeps agents off the database port is what is tested
        assert node["imports"][0] == "hyperhive-module"
        assert node["imports"][1].endswith("/examples/two-hosts/agents-no-db.nix")


def test_multihost_database_admits_the_two_hosts_with_scram_only(nix_eval: NixEval) -> None:
    db = multihost(nix_eval)["db"]
    assert db["ensureDatabases"] == ["hyperhive"]
    assert db["ensureUsers"] == [{"name": "hyperhive", "ensureDBOwnership": True}]
    lines = [" ".join(line.split()) for line in db["authentication"].splitlines() if line]
    assert lines == [
        "host hyperhive hyperhive 192.168.1.1/32 scram-sha-256",
        "host hyperhive hyperhive 192.168.1.2/32 scram-sha-256",
    ]
    assert db["firewall"]["allowedTCPPorts"] == [5432]


def test_multihost_script_checks_delivery_across_hosts(nix_eval: NixEval) -> None:
    got = multihost(nix_eval)
    script = got["testScript"]
    compile(script, "checks/multihost.nix testScript", "exec")
    # a send on one host, the reply read in the operator inbox of the other, both ways
    assert '("alpha", "beta", "a1f3"), ("beta", "alpha", "b2e4")' in script
    assert "hive-c0re send {agent} 'ping-{token}: say pong'" in script
    assert "hive-c0re inbox | grep -E ' {agent}( |:).*pong-{token}'" in script
    # the password never in the unit's environment; the uid range refused the port
    assert '"vm-test-only-db-password" not in env' in script
    assert "--reuid=524288 " in script
    assert 'agents = {"alpha":"alice","beta":"bob"}' in script

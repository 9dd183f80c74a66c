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

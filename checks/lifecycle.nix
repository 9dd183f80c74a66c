# The whole lifecycle on a NixOS host VM with real nixos-containers (SPEC §15):
# the host boots with services.hyperhive (and no flakes of its own: the module enables
# them), the manager container hm1nd comes up, an agent is spawned with
# `hive-c0re spawn` and resolves a name through the host's resolver, a message goes
# operator -> agent -> operator through the broker with a stand-in claude, an
# apply_commit is approved and deployed, and the agent is destroyed (state kept) and
# purged (state gone).
#
# Offline: the VM has no network. Every store path the daemon will need is pre-built
# here and copied into the VM's store (the agent's system before and after the change,
# and every flake input, so `nix build` inside the VM resolves the locked inputs from
# the store). The agent flake the daemon generates evaluates to exactly these
# derivations because it uses the same hyperhive flake (`path:${self}`), the same
# identity and the same agent.nix contents.
#
# Run: nix build .#checks.x86_64-linux.lifecycle -L
# Debug: nix run .#checks.x86_64-linux.lifecycle.driverInteractive
{
  pkgs,
  self,
  mkAgentSystem,
}:
let
  inherit (pkgs) lib;
  hlib = self.lib;

  agentName = "alice";
  port = hlib.agentPort agentName;
  identity = {
    name = agentName;
    role = "agent";
    inherit port;
    inherit (pkgs.stdenv.hostPlatform) system;
  };

  # The template the test's daemon seeds agents from: the real flake.nix, and an
  # agent.nix that swaps claude for the stand-in (the VM cannot reach Anthropic).
  testTemplate = pkgs.runCommand "hyperhive-vm-test-template" { } ''
    mkdir $out
    cp ${../templates/agent/flake.nix} $out/flake.nix
    cp ${./vm/agent.nix} $out/agent.nix
    cp ${./vm/stand-in-claude.py} $out/stand-in-claude.py
  '';

  agentBefore =
    (mkAgentSystem {
      inherit identity;
      modules = [ ./vm/agent.nix ];
    }).config.system.build.toplevel;
  agentAfter =
    (mkAgentSystem {
      inherit identity;
      modules = [ ./vm/agent-v2.nix ];
    }).config.system.build.toplevel;

  # The sources of this flake and of all its inputs, transitively.
  flakeSources =
    flake: [ flake.outPath ] ++ lib.concatMap flakeSources (lib.attrValues (flake.inputs or { }));

  # The harness treats a credentials file as "logged in"; the stand-in never reads it.
  fakeCredentials = pkgs.writeText "credentials.json" (
    builtins.toJSON {
      claudeAiOauth = {
        accessToken = "vm-test-not-a-token";
        refreshToken = "vm-test-not-a-token";
        expiresAt = 4102444800000;
        scopes = [ "user:inference" ];
      };
    }
  );

  requestApplyCommit = pkgs.writeScript "request-apply-commit" ''
    #!${pkgs.python3}/bin/python3
    ${builtins.readFile ./vm/request-apply-commit.py}
  '';

  # A name only the host's resolver knows (not in any /etc/hosts).
  apiName = "api.hive.test";
  apiAddress = "192.0.2.7";

  stateDir = "/var/lib/hyperhive";
  config = "${stateDir}/agents/${agentName}/config";
  applied = "${stateDir}/applied/${agentName}";
  broker = "${stateDir}/broker.sqlite";
in
pkgs.testers.runNixOSTest {
  name = "hyperhive-lifecycle";

  nodes.host =
    { lib, pkgs, ... }:
    {
      imports = [ self.nixosModules.default ];

      services.hyperhive = {
        enable = true;
        agentTemplateDir = testTemplate;
        # Exercised so the drop-in path runs; generous enough not to matter.
        agentMemoryMax = "1500M";
      };

      virtualisation = {
        memorySize = 4096;
        diskSize = 8192;
        cores = 2;
        writableStore = true;
        additionalPaths = [
          agentBefore
          agentAfter
          testTemplate
        ]
        ++ flakeSources self;
      };

      # No experimental-features here: the module must enable flakes itself (nixos-container
      # builds agents with `nix build --flake`), as on a host that never had them.
      nix.settings = {
        # No network in the VM: never try a binary cache or the global flake registry.
        substituters = lib.mkForce [ ];
        flake-registry = "";
        # Hard-linking the host store into a build chroot fails inside the VM (as in
        # nixpkgs' containers-imperative test); everything is pre-built anyway.
        sandbox = false;
      };

      # A resolver on the host that knows one name, so the test can see an agent resolve
      # through the host's /etc/resolv.conf (COPY_RESOLV_CONF=1 in its conf).
      services.dnsmasq = {
        enable = true;
        resolveLocalQueries = true;
        settings = {
          address = [ "/${apiName}/${apiAddress}" ];
          no-resolv = true;
        };
      };

      environment.systemPackages = [
        pkgs.curl
        pkgs.sqlite
        pkgs.git
      ];
    };

  testScript = ''
    import json


    def sql(query):
        return host.succeed(f"sqlite3 ${broker} \"{query}\"").strip()

    host.start()
    host.wait_for_unit("hive-c0re.service")
    host.wait_for_open_port(7000)

    with subtest("the module enabled flakes on a host that had none"):
        host.succeed("grep -E '^experimental-features = .*flakes' /etc/nix/nix.conf")
        host.succeed("grep -E '^experimental-features = .*nix-command' /etc/nix/nix.conf")

    with subtest("the daemon's directories survive a restart"):
        host.succeed("test -S /run/hyperhive/host.sock")
        host.succeed("systemctl restart hive-c0re.service")
        host.wait_for_open_port(7000)
        host.succeed("test -d /run/hyperhive/manager")

    with subtest("the manager container starts with its own socket only"):
        host.wait_for_unit("container@hm1nd.service")
        host.wait_until_succeeds("test -S /run/hyperhive/manager/mcp.sock", timeout=120)
        host.wait_until_succeeds("curl -sf http://127.0.0.1:8000/api/state", timeout=180)
        host.succeed("nixos-container run hm1nd -- test -S /run/hive/mcp.sock")
        host.fail("nixos-container run hm1nd -- test -e /run/hyperhive/host.sock")
        host.succeed("nixos-container run hm1nd -- test -d /agents")
        host.fail("nixos-container run hm1nd -- touch /applied/probe")

    with subtest("spawn creates the agent from the template"):
        host.succeed("hive-c0re spawn ${agentName} >&2")
        host.wait_for_unit("container@h-${agentName}.service", timeout=600)
        host.succeed("test -S /run/hyperhive/agents/${agentName}/mcp.sock")
        for name in ["flake.nix", "agent.nix", "stand-in-claude.py"]:
            host.succeed(f"cmp ${testTemplate}/{name} ${config}/{name}")
        host.succeed("grep -q '\"name\": *\"${agentName}\"' ${applied}/hyperhive-identity.json")
        host.succeed("systemctl show container@h-${agentName}.service -p MemoryMax | grep -qv infinity")
        # The conf rewrite asks the start script to copy the host's resolver config.
        host.succeed("grep -qx COPY_RESOLV_CONF=1 /etc/nixos-containers/h-${agentName}.conf")

    with subtest("the agent resolves names through the host's resolver"):
        host.succeed("getent hosts ${apiName} | grep -q '^${apiAddress} '")
        host_resolv = host.succeed("cat /etc/resolv.conf")
        agent_resolv = host.succeed("nixos-container run h-${agentName} -- cat /etc/resolv.conf")
        assert agent_resolv == host_resolv, (host_resolv, agent_resolv)
        host.succeed(
            "nixos-container run h-${agentName} -- getent hosts ${apiName} | grep -q '^${apiAddress} '"
        )

    with subtest("the agent runs"):
        # Credentials make the harness leave needs-login mode.
        host.succeed("install -D -m 600 ${fakeCredentials} ${stateDir}/agents/${agentName}/claude/.credentials.json")
        host.wait_until_succeeds("curl -sf http://127.0.0.1:${toString port}/api/state", timeout=180)

    with subtest("a message reaches the agent and its reply reaches the operator"):
        host.succeed("hive-c0re send ${agentName} 'ping-7f3a: say pong'")
        host.wait_until_succeeds(
            "sqlite3 ${broker} \"select body from messages where sender = '${agentName}'"
            " and recipient = 'operator'\" | grep -q pong-7f3a",
            timeout=180,
        )

    with subtest("an approved apply_commit is deployed"):
        host.succeed(
            "cp ${./vm/agent-v2.nix} ${config}/agent.nix",
            "chmod u+w ${config}/agent.nix",
            "git -C ${config} -c user.name=manager -c user.email=manager@hm1nd commit -qam 'add a marker file'",
        )
        sha = host.succeed("git -C ${config} rev-parse HEAD").strip()
        reply = json.loads(host.succeed(f"${requestApplyCommit} ${agentName} {sha}"))
        approval = sql("select id from approvals where agent = '${agentName}' and kind = 'apply_commit' and status = 'pending'")
        assert approval, f"request_apply_commit stored no pending approval: {reply}"
        assert reply.get("id") in (None, int(approval)), reply
        host.succeed(f"hive-c0re approve {approval} >&2")
        host.wait_until_succeeds(
            f"git -C ${applied} rev-parse -q --verify refs/tags/deployed/{approval}", timeout=600
        )
        assert sql(f"select status from approvals where id = {approval}") == "approved"
        host.wait_until_succeeds(
            "nixos-container run h-${agentName} -- cat /etc/hyperhive-test-marker | grep -qx applied",
            timeout=180,
        )

    with subtest("destroy keeps the agent's state, purge removes it"):
        host.succeed("hive-c0re destroy ${agentName} >&2")
        host.wait_until_fails("systemctl is-active container@h-${agentName}.service")
        host.fail("test -e /etc/nixos-containers/h-${agentName}.conf")
        host.succeed("test -d ${stateDir}/agents/${agentName}/state", "test -d ${applied}")
        host.succeed("hive-c0re destroy --purge ${agentName} >&2")
        host.succeed("test ! -e ${stateDir}/agents/${agentName}", "test ! -e ${applied}")

    with subtest("the manager is still there"):
        host.succeed("systemctl is-active container@hm1nd.service")
  '';
}

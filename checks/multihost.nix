# One hive on two hosts (issue 17): hosts alpha and beta run hive-c0re against one
# PostgreSQL server on a third node, db. Each host spawns an agent; a message the
# operator sends on alpha to beta's agent is answered, and the answer shows up in the
# operator inbox on alpha, and the other way round. So both daemons start with
# services.hyperhive.database (url + passwordFile, as in examples/two-hosts/beta.nix),
# log in with scram-sha-256 from the addresses pg_hba names, and a send committed by one
# daemon wakes a recv parked on the other. Also: the password is in neither unit's
# environment, and examples/two-hosts/agents-no-db.nix refuses the database port to the
# container uid range while root (hive-c0re) and other uids keep it.
#
# The agents use the local backend (harness processes of the daemon) with the stand-in
# claude of the lifecycle test: containers are checks/lifecycle.nix's subject; here it is
# the hosts' wiring. The manager is off on both hosts (one hive has one manager; which
# host claims it is the daemon's business, tested in Python).
#
# Run: nix build .#checks.x86_64-linux.multihost -L   (KVM, ~3 x 1.5 GB RAM)
# Debug: nix run .#checks.x86_64-linux.multihost.driverInteractive
{ pkgs, self }:
let
  inherit (pkgs) lib;
  hlib = self.lib;

  # Test-only secret: it is in the store (environment.etc below). A real host keeps the
  # file outside the store (the module refuses a store path); see examples/two-hosts.
  dbPassword = "vm-test-only-db-password";
  passwordFile = "/etc/hyperhive/db-password";

  standInClaude = pkgs.writeScriptBin "claude" (
    "#!${pkgs.python3}/bin/python3\n" + builtins.readFile ./vm/stand-in-claude.py
  );

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

  stateDir = "/var/lib/hyperhive";
  agents = {
    alpha = "alice";
    beta = "bob";
  };

  hostNode =
    hostName:
    { pkgs, ... }:
    {
      imports = [
        self.nixosModules.default
        ../examples/two-hosts/agents-no-db.nix
      ];
      networking.hostName = hostName;
      services.hyperhive = {
        enable = true;
        backend = "local";
        manager.enable = false;
        database = {
          url = "postgresql://hyperhive@db:5432/hyperhive";
          inherit passwordFile;
        };
      };
      environment.etc."hyperhive/db-password" = {
        text = dbPassword;
        mode = "0600";
      };
      # The local backend starts harnesses only when asked; they run the stand-in.
      systemd.services.hive-c0re.environment = {
        HYPERHIVE_HARNESS = "true";
        HYPERHIVE_CLAUDE_BIN = "${standInClaude}/bin/claude";
      };
      virtualisation.memorySize = 1536;
      environment.systemPackages = [
        pkgs.curl
        pkgs.python3
      ];
    };
in
pkgs.testers.runNixOSTest {
  name = "hyperhive-multihost";

  nodes = {
    db =
      { nodes, ... }:
      {
        services.postgresql = {
          enable = true;
          enableTCPIP = true;
          ensureDatabases = [ "hyperhive" ];
          ensureUsers = [
            {
              name = "hyperhive";
              ensureDBOwnership = true;
            }
          ];
          # The two hosts, by address, with the role's password; nobody else.
          authentication = lib.concatMapStrings (host: ''
            host hyperhive hyperhive ${nodes.${host}.networking.primaryIPAddress}/32 scram-sha-256
          '') (lib.attrNames agents);
        };
        networking.firewall.allowedTCPPorts = [ 5432 ];
      };
    alpha = hostNode "alpha";
    beta = hostNode "beta";
  };

  testScript = ''
    hosts = {"alpha": alpha, "beta": beta}
    agents = ${builtins.toJSON agents}
    ports = ${builtins.toJSON (lib.mapAttrs (_: hlib.agentPort) agents)}  # each agent's web UI


    def psql(query):
        return db.succeed(f"runuser -u postgres -- psql -d hyperhive -tAc \"{query}\"").strip()


    with subtest("the database comes up with the hyperhive role, which gets its password"):
        db.start()
        db.wait_for_unit("postgresql.target")
        # psql's \password would hash on the client; a literal is fine for a test secret
        psql("ALTER ROLE hyperhive PASSWORD '${dbPassword}'")
        db.wait_for_open_port(5432)

    with subtest("both daemons start on the shared database"):
        for machine in hosts.values():
            machine.start()
        for name, machine in hosts.items():
            machine.wait_for_unit("hive-c0re.service")
            machine.wait_for_open_port(7000)
            env = machine.succeed("systemctl show hive-c0re.service -p Environment")
            assert f"HYPERHIVE_HOST_NAME={name}" in env, env
            assert "HYPERHIVE_DATABASE_URL=postgresql://hyperhive@db:5432/hyperhive" in env, env
            assert "HYPERHIVE_DATABASE_PASSWORD_FILE=${passwordFile}" in env, env
            assert "${dbPassword}" not in env, "the password is in the unit's environment"
            machine.succeed("test \"$(stat -c %a ${passwordFile})\" = 600")
        # one connection or more from each host's address, as the hyperhive role
        db.wait_until_succeeds(
            "test \"$(runuser -u postgres -- psql -tAc \"select count(distinct client_addr)"
            " from pg_stat_activity where usename = 'hyperhive'\")\" = 2",
            timeout=60,
        )

    with subtest("the database port is closed to the container uid range, open to others"):
        connect = "python3 -c 'import socket; socket.create_connection((\"db\", 5432), timeout=5)'"
        for machine in hosts.values():
            machine.fail(f"setpriv --reuid=524288 --regid=524288 --clear-groups -- {connect}")
            machine.fail(f"setpriv --reuid=1879048191 --regid=1879048191 --clear-groups -- {connect}")
            machine.succeed(f"setpriv --reuid=65534 --regid=65534 --clear-groups -- {connect}")
            machine.succeed(connect)

    with subtest("each host spawns its agent, and sees the other host's"):
        for name, machine in hosts.items():
            agent = agents[name]
            machine.succeed(f"hive-c0re spawn {agent} >&2")
            machine.succeed(
                f"install -D -m 600 ${fakeCredentials} ${stateDir}/agents/{agent}/claude/.credentials.json"
            )
        for name, machine in hosts.items():
            port = ports[name]
            machine.wait_until_succeeds(f"curl -sf http://127.0.0.1:{port}/api/state", timeout=180)
        for machine in hosts.values():
            listing = machine.succeed("hive-c0re list")
            assert "alice" in listing and "bob" in listing, listing

    with subtest("a message sent on one host is answered on the other and read on the first"):
        for sender, receiver, token in [("alpha", "beta", "a1f3"), ("beta", "alpha", "b2e4")]:
            agent = agents[receiver]
            hosts[sender].succeed(f"hive-c0re send {agent} 'ping-{token}: say pong'")
            hosts[sender].wait_until_succeeds(
                f"hive-c0re inbox | grep -E ' {agent}( |:).*pong-{token}'", timeout=180
            )
            # the receiving host's operator inbox is the same hive-wide one
            hosts[receiver].succeed(f"hive-c0re inbox | grep -q pong-{token}")
  '';
}

"""The host module, the manager container and harness-base, evaluated without nixpkgs.

tests/nix/eval-module.nix calls each module with a stand-in `lib` (stub-lib.nix) and a
stand-in `pkgs`, so the option declarations and every definition body really evaluate:
the unit hive-c0re gets, the bind mounts of hm1nd, the firewall ports, the harness
service, the assertions and their messages. What this cannot check (option types
against definitions, merging with the rest of NixOS) is `nix flake check`'s job.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hyperhive.agents.names import agent_port
from nixeval import REPO, NixEval

PKGS = """{
  git = { outPath = "/nix/store/0-git"; pname = "git"; };
  hyperhive = { outPath = "/nix/store/0-hyperhive"; pname = "hyperhive";
                meta.mainProgram = "hive-c0re"; };
  hive-forge = { outPath = "/nix/store/0-hive-forge"; pname = "hive-forge";
                 meta.mainProgram = "hive-forge"; };
  claude-code = { outPath = "/nix/store/0-claude-code"; pname = "claude-code";
                  meta.mainProgram = "claude"; };
}"""

HOST = (
    "settings: import ./tests/nix/eval-module.nix {"
    " modules = [ ./modules/hyperhive.nix ./modules/manager.nix ];"
    f" pkgs = {PKGS};"
    ' settings = { system.stateVersion = settings._stateVersion or "25.11";'
    ' networking.hostName = settings._hostName or "Alpha";'
    " services.hyperhive = {"
    ' enable = true; flakeRef = "path:/nix/store/0-source"; }'
    ' // builtins.removeAttrs settings [ "_stateVersion" "_hostName" ]; }; }'
)

HARNESS = (
    "settings: import ./tests/nix/eval-module.nix {"
    " modules = [ ./modules/harness-base.nix ];"
    f" pkgs = {PKGS};"
    ' settings = { hyperhive = { name = "alice"; } // settings; }; }'
)

HOST_VIEW = """
  let
    d = r.definitions;
    unit = d.systemd.services.hive-c0re;
    hm1nd = d.containers.hm1nd or null;
  in {
    unit = { inherit (unit) path environment serviceConfig wantedBy after wants; };
    postgresql = d.services.postgresql or null;
    firewall = d.networking.firewall or null;
    enableContainers = d.boot.enableContainers;
    nixSettings = d.nix.settings or { };
    systemPackages = map (p: p.pname) d.environment.systemPackages;
    tmpfiles = builtins.attrNames (d.systemd.tmpfiles.settings.hyperhive or { })
      ++ builtins.attrNames (d.systemd.tmpfiles.settings.hyperhive-manager or { });
    hm1nd = if hm1nd == null then null else {
      inherit (hm1nd) autoStart privateNetwork privateUsers bindMounts;
      hyperhive = hm1nd.config.hyperhive;
      importCount = builtins.length hm1nd.config.imports;
    };
    hm1ndUnit = d.systemd.services."container@hm1nd" or null;
    assertions = d.assertions;
    warnings = d.warnings or [ ];
  }
"""

HARNESS_VIEW = """
  let
    d = r.definitions;
    predicate = d.nixpkgs.config.allowUnfreePredicate;
  in {
    services = builtins.mapAttrs
      (_: s: { inherit (s) path environment serviceConfig wantedBy; }) d.systemd.services;
    isNspawnContainer = d.boot.isNspawnContainer;
    isContainerSet = d.boot ? isContainer;
    firewall = d.networking.firewall.enable;
    hostName = d.networking.hostName;
    systemPackages = map (p: p.pname) d.environment.systemPackages;
    agentJson = builtins.fromJSON d.environment.etc."hyperhive/agent.json".text;
    unfree = map predicate [ { pname = "claude-code"; } { pname = "vscode"; } ];
    port = r.config.hyperhive.port;
    assertions = d.assertions;
    warnings = d.warnings or [ ];
  }
"""


def host(nix_eval: NixEval, settings: str = "{ }") -> dict[str, Any]:
    result: dict[str, Any] = nix_eval(f"let r = ({HOST}) {settings}; in {HOST_VIEW}")
    return result


def harness(nix_eval: NixEval, settings: str = "{ }") -> dict[str, Any]:
    result: dict[str, Any] = nix_eval(f"let r = ({HARNESS}) {settings}; in {HARNESS_VIEW}")
    return result


def failing(assertions: list[dict[str, Any]]) -> list[str]:
    return [a["message"] for a in assertions if not a["assertion"]]


# --- host module ---------------------------------------------------------------------


def test_daemon_unit(nix_eval: NixEval) -> None:
    unit = host(nix_eval)["unit"]
    # JSON renders a package as its store path.
    assert unit["path"] == ["/nix/store/0-git", "/run/current-system/sw"]
    assert unit["wantedBy"] == ["multi-user.target"]
    config = unit["serviceConfig"]
    assert config["ExecStart"] == "/nix/store/0-hyperhive/bin/hive-c0re serve"
    assert config["RuntimeDirectory"] == "hyperhive"
    assert config["RuntimeDirectoryPreserve"] == "yes"
    assert config["StateDirectory"] == "hyperhive"
    # one descriptor per agent connection: far above systemd's default 1,024 (issue 13)
    assert config["LimitNOFILE"] == 65536
    env = unit["environment"]
    assert env["HYPERHIVE_GIT"] == "/nix/store/0-git/bin/git"
    assert env["HYPERHIVE_RUN_DIR"] == "/run/hyperhive"
    assert env["HYPERHIVE_STATE_DIR"] == "/var/lib/hyperhive"
    assert env["HYPERHIVE_DASHBOARD_PORT"] == "7000"
    assert env["HYPERHIVE_DASHBOARD_HOST"] == "127.0.0.1"
    assert env["HYPERHIVE_FLAKE_REF"] == "path:/nix/store/0-source"
    # The template directory is copied to the store: the daemon gets a store path.
    assert env["HYPERHIVE_AGENT_TEMPLATE_DIR"].startswith("/nix/store/")
    assert env["HYPERHIVE_AGENT_TEMPLATE_DIR"].endswith("-agent")
    assert "HYPERHIVE_AGENT_MEMORY_MAX" not in env


def test_daemon_is_hardened(nix_eval: NixEval) -> None:
    config = host(nix_eval)["unit"]["serviceConfig"]
    for option in ["NoNewPrivileges", "PrivateTmp", "ProtectKernelModules", "LockPersonality"]:
        assert config[option] is True, option
    assert config["MemoryDenyWriteExecute"] is True
    assert "AF_UNIX" in config["RestrictAddressFamilies"]


@pytest.mark.parametrize("backend", ["local", "nspawn"])
def test_in_process_backends_drop_what_agents_cannot_run_under(
    nix_eval: NixEval, backend: str
) -> None:
    # claude (node, JIT) and systemd-nspawn run inside the unit with these backends.
    config = host(nix_eval, f'{{ backend = "{backend}"; }}')["unit"]["serviceConfig"]
    assert "MemoryDenyWriteExecute" not in config
    assert "ProtectKernelTunables" not in config
    assert config["NoNewPrivileges"] is True


def test_containers_are_enabled_and_cli_installed(nix_eval: NixEval) -> None:
    got = host(nix_eval)
    assert got["enableContainers"] is True
    assert got["systemPackages"] == ["hyperhive"]
    dirs = {
        "/var/lib/hyperhive/agents",
        "/var/lib/hyperhive/applied",
        "/var/lib/hyperhive/proposed",
    }
    assert dirs <= set(got["tmpfiles"])


def test_nixos_backend_enables_flakes_for_nixos_container(nix_eval: NixEval) -> None:
    # nixos-container runs `nix build --flake` without --extra-experimental-features: a
    # host without them in nix.conf fails every spawn after a clean switch.
    features = host(nix_eval)["nixSettings"]["experimental-features"]
    assert {"nix-command", "flakes"} <= set(features)


@pytest.mark.parametrize("backend", ["nspawn", "local"])
def test_other_backends_leave_containers_and_nix_settings_alone(
    nix_eval: NixEval, backend: str
) -> None:
    got = host(nix_eval, f'{{ backend = "{backend}"; }}')
    assert got["enableContainers"] is not True  # mkIf false: no definition
    assert got["nixSettings"].get("experimental-features") in (None, {})


def test_state_version_2205_and_later_passes(nix_eval: NixEval) -> None:
    assert failing(host(nix_eval, '{ _stateVersion = "22.05"; }')["assertions"]) == []
    # Other backends never look at /etc/nixos-containers.
    got = host(nix_eval, '{ _stateVersion = "21.11"; backend = "nspawn"; }')
    assert failing(got["assertions"]) == []


def systemd_environment_value(assignment_value: str) -> str:
    """What a process sees for an Environment= value: systemd turns `%%` into `%`.

    Any other `%x` is a specifier systemd would expand (or reject), so a value still
    holding one after escaping is a bug this refuses to hide.
    """
    out, i = [], 0
    while i < len(assignment_value):
        if assignment_value[i] == "%":
            assert assignment_value[i : i + 2] == "%%", f"unescaped % in {assignment_value!r}"
            out.append("%")
            i += 2
        else:
            out.append(assignment_value[i])
            i += 1
    return "".join(out)


def test_percent_in_daemon_environment_reaches_the_daemon_unexpanded(nix_eval: NixEval) -> None:
    got = host(nix_eval, '{ operatorPronouns = "100%h she/her"; flakeRef = "path:/x%20y"; }')
    env = got["unit"]["environment"]
    assert systemd_environment_value(env["HYPERHIVE_OPERATOR_PRONOUNS"]) == "100%h she/her"
    assert systemd_environment_value(env["HYPERHIVE_FLAKE_REF"]) == "path:/x%20y"


def test_percent_in_mcp_servers_reaches_the_harness_unexpanded(nix_eval: NixEval) -> None:
    got = harness(
        nix_eval,
        '{ extraMcpServers.fetch = { command = "/bin/f"; args = [ "--fmt=%n-%%" ];'
        ' env.RATE = "50%"; }; operatorPronouns = "%u"; }',
    )
    env = got["services"]["hive-ag3nt"]["environment"]
    servers = json.loads(systemd_environment_value(env["HYPERHIVE_EXTRA_MCP_SERVERS"]))
    assert servers["fetch"]["args"] == ["--fmt=%n-%%"]
    assert servers["fetch"]["env"] == {"RATE": "50%"}
    assert systemd_environment_value(env["HYPERHIVE_OPERATOR_PRONOUNS"]) == "%u"


def test_firewall_stays_closed_by_default(nix_eval: NixEval) -> None:
    # mkIf false: the module defines nothing under networking.firewall.
    assert host(nix_eval)["firewall"] in (None, {})


def test_open_firewall_opens_dashboard_manager_and_named_agents(nix_eval: NixEval) -> None:
    got = host(
        nix_eval,
        '{ openFirewall = true; dashboardHost = "0.0.0.0"; firewallAgents = [ "alice" "bob" ]; }',
    )
    assert got["firewall"] == {
        "allowedTCPPorts": [7000, 8000, agent_port("alice"), agent_port("bob")]
    }
    assert got["warnings"] == []


def test_open_firewall_on_loopback_warns(nix_eval: NixEval) -> None:
    warnings = host(nix_eval, "{ openFirewall = true; }")["warnings"]
    assert len(warnings) == 1
    assert "services.hyperhive.dashboardHost" in warnings[0]


def test_manager_container(nix_eval: NixEval) -> None:
    hm1nd = host(nix_eval)["hm1nd"]
    assert hm1nd["autoStart"] is True
    assert hm1nd["privateNetwork"] is False
    assert {
        k: {"hostPath": v["hostPath"], "isReadOnly": v["isReadOnly"]}
        for k, v in hm1nd["bindMounts"].items()
    } == {
        "/run/hive": {"hostPath": "/run/hyperhive/manager", "isReadOnly": False},
        # the proposed repos only: never the agents/ tree (claude/, state/ of every agent)
        "/agents": {"hostPath": "/var/lib/hyperhive/proposed", "isReadOnly": False},
        "/applied": {"hostPath": "/var/lib/hyperhive/applied", "isReadOnly": True},
        "/root/.claude": {
            "hostPath": "/var/lib/hyperhive/agents/manager/claude",
            "isReadOnly": False,
        },
        "/state": {"hostPath": "/var/lib/hyperhive/agents/manager/state", "isReadOnly": False},
    }
    assert hm1nd["hyperhive"] == {
        "name": "manager",
        "role": "manager",
        "port": 8000,
        "model": "sonnet",
        "webHost": "127.0.0.1",
        "operatorPronouns": "they/them",
    }
    assert hm1nd["importCount"] == 2  # harness-base + manager.extraConfig


def test_manager_container_is_user_namespaced_with_idmapped_binds(nix_eval: NixEval) -> None:
    hm1nd = host(nix_eval)["hm1nd"]
    assert hm1nd["privateUsers"] == "pick"
    # nixos-containers.nix renders each bind as --bind[-ro]=<hostPath>:<mountPoint>
    flags = sorted(
        f"--bind{'-ro' if b['isReadOnly'] else ''}={b['hostPath']}:{b['mountPoint']}"
        for b in hm1nd["bindMounts"].values()
    )
    assert flags == [
        "--bind-ro=/var/lib/hyperhive/applied:/applied:idmap",
        "--bind=/run/hyperhive/manager:/run/hive:idmap",
        "--bind=/var/lib/hyperhive/agents/manager/claude:/root/.claude:idmap",
        "--bind=/var/lib/hyperhive/agents/manager/state:/state:idmap",
        "--bind=/var/lib/hyperhive/proposed:/agents:idmap",
    ]


def test_trusting_every_nix_user_is_refused(nix_eval: NixEval) -> None:
    trusting = HOST.replace(
        "settings = { system.stateVersion =",
        'settings = { nix.settings.trusted-users = [ "*" ]; system.stateVersion =',
    )
    assert trusting != HOST
    got = nix_eval(f"let r = ({trusting}) {{ }}; in {HOST_VIEW}")
    assert any('trusted-users contains "*"' in m for m in failing(got["assertions"]))
    assert not any("trusted-users" in m for m in failing(host(nix_eval)["assertions"]))


def test_manager_follows_state_dir_and_limits(nix_eval: NixEval) -> None:
    got = host(
        nix_eval,
        '{ stateDir = "/var/lib/hive"; agentMemoryMax = "2G"; agentCpuQuota = "50%"; }',
    )
    assert got["hm1nd"]["bindMounts"]["/agents"]["hostPath"] == "/var/lib/hive/proposed"
    assert got["hm1ndUnit"]["after"] == ["hive-c0re.service"]
    assert got["hm1ndUnit"]["serviceConfig"] == {"MemoryMax": "2G", "CPUQuota": "50%"}
    assert got["unit"]["serviceConfig"]["StateDirectory"] == "hive"
    assert got["unit"]["environment"]["HYPERHIVE_AGENT_MEMORY_MAX"] == "2G"


def test_manager_can_be_disabled(nix_eval: NixEval) -> None:
    got = host(nix_eval, "{ manager.enable = false; }")
    assert got["hm1nd"] is None
    assert got["hm1ndUnit"] is None


def test_default_host_config_passes_its_assertions(nix_eval: NixEval) -> None:
    assert failing(host(nix_eval)["assertions"]) == []


@pytest.mark.parametrize(
    ("settings", "option"),
    [
        ('{ stateDir = "/srv/hive"; }', "services.hyperhive.stateDir"),
        ('{ stateDir = "/var/lib/hive/"; }', "services.hyperhive.stateDir"),
        ('{ flakeRef = ""; }', "services.hyperhive.flakeRef"),
        ('{ firewallAgents = [ "Bad_Name" ]; }', "services.hyperhive.firewallAgents"),
        ('{ _stateVersion = "21.11"; }', "system.stateVersion"),
    ],
)
def test_host_assertions_name_the_option(nix_eval: NixEval, settings: str, option: str) -> None:
    messages = failing(host(nix_eval, settings)["assertions"])
    assert len(messages) == 1
    assert option in messages[0]


# --- multi-host: hostName and database (issue 17) --------------------------------------

DB_URL = "postgresql://hyperhive@alpha.lan:5432/hyperhive?sslmode=require"


def test_single_host_default_has_no_database_and_the_lowercased_host_name(
    nix_eval: NixEval,
) -> None:
    got = host(nix_eval)
    env = got["unit"]["environment"]
    assert env["HYPERHIVE_HOST_NAME"] == "alpha"  # networking.hostName "Alpha", lowercased
    assert "HYPERHIVE_DATABASE_URL" not in env
    assert "HYPERHIVE_DATABASE_PASSWORD_FILE" not in env
    assert "postgresql.service" not in got["unit"]["after"]
    assert got["postgresql"] in (None, {})  # mkIf false: no definition


def test_database_url_password_file_and_host_name_reach_the_daemon(nix_eval: NixEval) -> None:
    got = host(
        nix_eval,
        f'{{ hostName = "beta-2"; database = {{ url = "{DB_URL}";'
        ' passwordFile = "/run/keys/hyperhive-db"; }; }',
    )
    env = got["unit"]["environment"]
    assert env["HYPERHIVE_DATABASE_URL"] == DB_URL
    assert env["HYPERHIVE_DATABASE_PASSWORD_FILE"] == "/run/keys/hyperhive-db"
    assert env["HYPERHIVE_HOST_NAME"] == "beta-2"
    assert failing(got["assertions"]) == []
    # a remote server: wait for the network, not for a local postgresql
    assert "network-online.target" in got["unit"]["after"]
    assert "network-online.target" in got["unit"]["wants"]
    assert "postgresql.service" not in got["unit"]["after"]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://hyperhive@localhost/hyperhive",
        "postgresql://hyperhive@127.0.0.1:5432/hyperhive",
        "postgres://hyperhive@[::1]/hyperhive",
        "postgresql:///hyperhive",
        "postgresql://hyperhive@/hyperhive?host=/run/postgresql",
        "postgresql://hyperhive@alpha.lan/hyperhive?host=%2Frun%2Fpostgresql",
    ],
)
def test_a_database_on_this_host_orders_the_daemon_after_it(nix_eval: NixEval, url: str) -> None:
    got = host(nix_eval, f'{{ database.url = "{url}"; }}')
    assert {"postgresql.service", "postgresql.target"} <= set(got["unit"]["after"])
    assert "network-online.target" not in got["unit"]["after"]
    assert failing(got["assertions"]) == []


def test_create_locally_sets_up_postgresql_and_points_the_daemon_at_its_socket(
    nix_eval: NixEval,
) -> None:
    got = host(nix_eval, "{ database.createLocally = true; }")
    pg = got["postgresql"]
    assert pg["enable"] is True
    assert pg["ensureDatabases"] == ["hyperhive"]
    assert pg["ensureUsers"] == [{"name": "hyperhive", "ensureDBOwnership": True}]
    # root (the daemon) may log in as hyperhive, to the hyperhive database, by socket only
    assert pg["identMap"].split() == ["hyperhive", "root", "hyperhive"]
    assert pg["authentication"].split() == [
        "local",
        "hyperhive",
        "hyperhive",
        "peer",
        "map=hyperhive",
    ]
    env = got["unit"]["environment"]
    assert env["HYPERHIVE_DATABASE_URL"] == (
        "postgresql://hyperhive@/hyperhive?host=/run/postgresql"
    )
    assert "HYPERHIVE_DATABASE_PASSWORD_FILE" not in env
    assert "postgresql.target" in got["unit"]["wants"]
    assert "postgresql.service" in got["unit"]["after"]
    assert failing(got["assertions"]) == []


def test_create_locally_keeps_an_explicit_url(nix_eval: NixEval) -> None:
    got = host(
        nix_eval,
        '{ database = { createLocally = true; url = "postgresql://hyperhive@localhost/hyperhive";'
        ' passwordFile = "/run/keys/db"; }; }',
    )
    env = got["unit"]["environment"]
    assert env["HYPERHIVE_DATABASE_URL"] == "postgresql://hyperhive@localhost/hyperhive"
    assert got["postgresql"]["enable"] is True


SECRET = "s3cret-pw"


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        (
            f'{{ database.url = "postgresql://hyperhive:{SECRET}@db.lan/hyperhive"; }}',
            "contains a password",
        ),
        (
            f'{{ database.url = "postgresql://:{SECRET}@db.lan/hyperhive"; }}',
            "contains a password",
        ),
        (
            '{ database.url = "postgresql://hyperhive@db.lan/hyperhive?sslmode=require'
            f'&password={SECRET}"; }}',
            "contains a password",
        ),
        ('{ database.url = "mysql://hyperhive@db.lan/hyperhive"; }', "libpq URI"),
        ('{ database.url = "host=db.lan dbname=hyperhive"; }', "libpq URI"),
        (
            f'{{ database = {{ url = "{DB_URL}";'
            ' passwordFile = "/nix/store/0000-hyperhive-db-password"; }; }',
            "outside /nix/store",
        ),
        (
            f'{{ database = {{ url = "{DB_URL}"; passwordFile = "keys/db"; }}; }}',
            "absolute path",
        ),
        (
            '{ database.passwordFile = "/run/keys/db"; }',
            "passwordFile is set but",
        ),
        ('{ hostName = "Beta"; }', "services.hyperhive.hostName"),
        ('{ hostName = "-beta"; }', "services.hyperhive.hostName"),
        ('{ hostName = "be--ta"; }', "services.hyperhive.hostName"),
        ('{ hostName = "beta-"; }', "services.hyperhive.hostName"),
        ('{ hostName = "a2345678901234567890123456789012"; }', "services.hyperhive.hostName"),
        # the default follows networking.hostName: empty (DHCP-assigned) or with a '_'
        ('{ _hostName = ""; }', "services.hyperhive.hostName"),
        ('{ _hostName = "my_host"; }', "services.hyperhive.hostName"),
    ],
)
def test_database_and_host_name_assertions(nix_eval: NixEval, settings: str, needle: str) -> None:
    messages = failing(host(nix_eval, settings)["assertions"])
    assert len(messages) == 1, messages
    assert needle in messages[0]
    # A refused URL's password is not repeated in the evaluation error.
    assert SECRET not in messages[0]


def test_longest_host_name_passes(nix_eval: NixEval) -> None:
    got = host(nix_eval, '{ hostName = "a234567890123456789012345678901"; }')  # 31
    assert failing(got["assertions"]) == []
    assert got["unit"]["environment"]["HYPERHIVE_HOST_NAME"] == "a234567890123456789012345678901"


# --- harness-base --------------------------------------------------------------------


def test_harness_service_for_an_agent(nix_eval: NixEval) -> None:
    got = harness(nix_eval)
    assert list(got["services"]) == ["hive-ag3nt"]
    service = got["services"]["hive-ag3nt"]
    assert service["serviceConfig"]["ExecStart"] == "/nix/store/0-hyperhive/bin/hive-ag3nt serve"
    assert service["path"][-1] == "/run/current-system/sw"
    env = service["environment"]
    assert env["HYPERHIVE_AGENT_NAME"] == "alice"
    assert env["HYPERHIVE_WEB_PORT"] == str(agent_port("alice"))
    assert env["HYPERHIVE_CLAUDE_BIN"] == "/nix/store/0-claude-code/bin/claude"
    assert env["HOME"] == "/root"
    assert got["port"] == agent_port("alice")
    assert got["hostName"] == "h-alice"


def test_harness_service_for_the_manager(nix_eval: NixEval) -> None:
    got = harness(nix_eval, '{ name = "manager"; role = "manager"; }')
    assert list(got["services"]) == ["hive-m1nd"]
    assert got["services"]["hive-m1nd"]["serviceConfig"]["ExecStart"].endswith("hive-m1nd serve")
    assert got["port"] == 8000
    assert failing(got["assertions"]) == []


def test_container_basics(nix_eval: NixEval) -> None:
    got = harness(nix_eval)
    assert got["isNspawnContainer"] is True
    assert got["isContainerSet"] is False  # renamed in 25.11: never set it
    assert got["firewall"] is False
    assert got["systemPackages"] == ["hive-forge", "claude-code", "git"]
    assert got["unfree"] == [True, False]


def test_agent_json_for_the_daemon(nix_eval: NixEval) -> None:
    got = harness(nix_eval, '{ model = "opus"; allowedRecipients = [ "bob" ]; }')
    assert got["agentJson"] == {
        "name": "alice",
        "role": "agent",
        "port": agent_port("alice"),
        "model": "opus",
        "allowedRecipients": ["bob"],
    }


def test_extra_mcp_servers_reach_the_harness(nix_eval: NixEval) -> None:
    settings = (
        '{ extraMcpServers.fetch = { command = "/bin/fetch"; args = [ ]; env = { };'
        ' allowedTools = [ "mcp__fetch__fetch" ]; }; }'
    )
    got = harness(nix_eval, settings)
    raw = got["services"]["hive-ag3nt"]["environment"]["HYPERHIVE_EXTRA_MCP_SERVERS"]
    assert json.loads(raw) == {
        "fetch": {
            "command": "/bin/fetch",
            "args": [],
            "env": {},
            "allowedTools": ["mcp__fetch__fetch"],
        }
    }
    assert got["warnings"] == []


def test_extra_mcp_server_named_hyperhive_warns(nix_eval: NixEval) -> None:
    settings = (
        '{ extraMcpServers.hyperhive = { command = "/bin/x"; args = [ ]; env = { };'
        " allowedTools = [ ]; }; }"
    )
    warnings = harness(nix_eval, settings)["warnings"]
    assert len(warnings) == 1
    assert "hyperhive.extraMcpServers.hyperhive" in warnings[0]


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ('{ name = "Alice"; }', "hyperhive.name"),
        ('{ name = "operator"; }', "hyperhive.name"),
        ('{ name = "alice"; role = "manager"; }', "hyperhive.role"),
        ("{ port = 8101; }", "hyperhive.port"),
        ('{ allowedRecipients = [ "../etc" ]; }', "hyperhive.allowedRecipients"),
    ],
)
def test_harness_assertions_name_the_option(nix_eval: NixEval, settings: str, needle: str) -> None:
    messages = failing(harness(nix_eval, settings)["assertions"])
    assert messages
    assert needle in messages[0]


# --- option declarations -------------------------------------------------------------

OPTIONS = """
  let
    lib = import ./tests/nix/stub-lib.nix;
    walk = prefix: tree:
      if lib.isOption tree then [ {
        name = prefix;
        hasDescription = tree ? description && tree.description != "";
        hasType = tree ? type;
        hasDefault = tree ? default;
        hasExample = tree ? example;
        internal = tree.internal or false;
        type = tree.type.name;
      } ]
      else builtins.concatMap (n: walk "${prefix}.${n}" tree.${n}) (builtins.attrNames tree);
    host = (HOST) { };
    harness = (HARNESS) { };
  in
    walk "options" host.options ++ walk "options" harness.options
"""


def test_every_option_has_type_description_default_and_example(nix_eval: NixEval) -> None:
    options = nix_eval(OPTIONS.replace("(HOST)", f"({HOST})").replace("(HARNESS)", f"({HARNESS})"))
    names = {o["name"] for o in options}
    assert "options.services.hyperhive.dashboardPort" in names
    assert "options.hyperhive.extraMcpServers" in names
    for option in options:
        assert option["hasType"], option["name"]
        assert option["hasDescription"], option["name"]
        if option["name"] != "options.hyperhive.name":  # set by the identity module
            assert option["hasDefault"], option["name"]
        # Examples where they help: not for packages, internal or closed enum options.
        if not option["internal"] and option["type"] not in {"package", "enum"}:
            assert option["hasExample"], option["name"]


def test_every_option_is_documented(nix_eval: NixEval) -> None:
    options = nix_eval(OPTIONS.replace("(HOST)", f"({HOST})").replace("(HARNESS)", f"({HARNESS})"))
    docs = (REPO / "docs" / "nixos.md").read_text()
    missing = []
    for option in options:
        if option["internal"]:
            continue
        name = option["name"].removeprefix("options.").removeprefix("services.hyperhive.")
        leaf = name.removeprefix("hyperhive.")
        # Tables name an option by its path below services.hyperhive (`manager.model`)
        # or, for the container options, by `hyperhive.<name>` or its bare `leaf`.
        # (`hyperhive.extraMcpServers.<key>` documents hyperhive.extraMcpServers.)
        spellings = [f"`{name}`", f"`{name}.", f"`{leaf}`"]
        if not any(spelling in docs for spelling in spellings):
            missing.append(option["name"])
    assert missing == []

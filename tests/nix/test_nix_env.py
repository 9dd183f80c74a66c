"""Every HYPERHIVE_*/HIVE_* variable the modules set is one the Python settings read.

A misspelt variable in a NixOS module is silently ignored by pydantic-settings (the
daemon just runs with its default), so the names are checked here: the environments the
modules build (lib.nix's daemonEnvironment and harnessEnvironment, evaluated for real)
against the fields of every settings class in hyperhive.settings, and the other way
round for fields without a default. The values are fed to the real classes too, so a
value the module renders wrongly (a port as "7000.0", a bad enum) fails here.
"""

from __future__ import annotations

import inspect
import os
import re
from typing import Any

import hyperhive.settings
import pytest
from nixeval import REPO, NixEval, tracked
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

LIB = "(import ./modules/lib.nix)"

ENV_NAME = re.compile(r"\b(?:HYPERHIVE|HIVE)_[A-Z0-9_]+\b")

DAEMON_CFG = """{
  stateDir = "/var/lib/hyperhive"; backend = "nixos"; dashboardPort = 7000;
  dashboardHost = "127.0.0.1"; operatorPronouns = "she/her";
  flakeRef = "path:/nix/store/0000000000000000000000000000000-source"; retentionDays = 30;
  agentMemoryMax = "4G"; agentCpuQuota = "200%"; hostName = "alpha";
  database = {
    url = "postgresql://hyperhive@db.lan:5432/hyperhive?sslmode=require";
    passwordFile = "/run/keys/hyperhive-db";
  };
}"""

HARNESS_CFG = """{
  name = "alice"; role = "agent"; port = 8879; model = "sonnet"; operatorPronouns = "they/them";
  rateLimitSleep = 300; webHost = "127.0.0.1"; allowedRecipients = [ "bob" ];
  extraMcpServers = {
    fetch = { command = "/bin/fetch"; args = [ "--x" ]; env = { A = "b"; };
              allowedTools = [ "mcp__fetch__fetch" ]; };
  };
}"""


def settings_classes() -> list[type[BaseSettings]]:
    """Every pydantic-settings class defined in hyperhive.settings."""
    return [
        cls
        for _, cls in inspect.getmembers(hyperhive.settings, inspect.isclass)
        if issubclass(cls, BaseSettings)
        and cls is not BaseSettings
        and cls.__module__ == hyperhive.settings.__name__
    ]


def env_names(cls: type[BaseSettings], *, required_only: bool = False) -> set[str]:
    """The environment variable names `cls` reads (upper case; settings are case-blind)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, field in cls.model_fields.items():
        if required_only and not field.is_required():
            continue
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias.upper())
        elif isinstance(alias, AliasChoices):
            names.update(str(choice).upper() for choice in alias.choices)
        else:
            names.add((prefix + field_name).upper())
    return names


def settings_class(name: str) -> type[BaseSettings]:
    found = {cls.__name__: cls for cls in settings_classes()}
    if name not in found:
        pytest.fail(
            f"hyperhive.settings has no {name}; the NixOS modules set its variables"
            f" (found: {sorted(found)})",
            pytrace=False,
        )
    return found[name]


def daemon_environment(nix_eval: NixEval) -> dict[str, str]:
    env: dict[str, str] = nix_eval(
        f'{LIB}.daemonEnvironment {{ cfg = {DAEMON_CFG}; git = "/nix/store/x-git/bin/git";'
        ' templateDir = "/nix/store/x-agent"; }'
    )
    return env


def harness_environment(nix_eval: NixEval) -> dict[str, str]:
    env: dict[str, str] = nix_eval(
        f"{LIB}.harnessEnvironment {{ cfg = {HARNESS_CFG};"
        ' claudeBin = "/nix/store/x/bin/claude"; }'
    )
    return env


def load(cls: type[BaseSettings], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Instantiate `cls` from exactly `env` (every HYPERHIVE_/HIVE_ variable cleared first)."""
    for name in list(os.environ):
        if ENV_NAME.fullmatch(name):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return cls()


def test_settings_classes_are_found() -> None:
    names = {cls.__name__ for cls in settings_classes()}
    assert "Settings" in names


def test_daemon_variables_are_read_by_settings(nix_eval: NixEval) -> None:
    env = daemon_environment(nix_eval)
    assert set(env) - env_names(settings_class("Settings")) == set()
    assert len(env) >= 15  # limits and database included: the cfg above sets them


def test_daemon_variables_parse_to_the_module_values(
    nix_eval: NixEval, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load(settings_class("Settings"), daemon_environment(nix_eval), monkeypatch)
    assert settings.dashboard_port == 7000
    assert settings.backend == "nixos"
    assert str(settings.state_dir) == "/var/lib/hyperhive"
    assert str(settings.run_dir) == "/run/hyperhive"
    assert settings.git == "/nix/store/x-git/bin/git"
    assert str(settings.agent_template_dir) == "/nix/store/x-agent"
    assert settings.operator_pronouns == "she/her"
    assert settings.agent_memory_max == "4G"
    assert settings.agent_cpu_quota == "200%"
    assert settings.retention_days == 30
    # issue 17: the shared store and this host's name
    assert settings.database_url == "postgresql://hyperhive@db.lan:5432/hyperhive?sslmode=require"
    assert str(settings.database_password_file) == "/run/keys/hyperhive-db"
    assert settings.host_name == "alpha"


def test_daemon_limits_are_omitted_when_unset(nix_eval: NixEval) -> None:
    cfg = DAEMON_CFG.replace('"4G"', "null").replace('"200%"', "null")
    cfg = cfg.replace('"postgresql://', 'null; x = "').replace('"/run/keys/hyperhive-db"', "null")
    env = nix_eval(
        f"builtins.attrNames ({LIB}.daemonEnvironment {{ cfg = {cfg};"
        ' git = "g"; templateDir = "t"; })'
    )
    assert "HYPERHIVE_AGENT_MEMORY_MAX" not in env
    assert "HYPERHIVE_AGENT_CPU_QUOTA" not in env
    # no database: the embedded sqlite store, and no password file to read
    assert "HYPERHIVE_DATABASE_URL" not in env
    assert "HYPERHIVE_DATABASE_PASSWORD_FILE" not in env
    assert "HYPERHIVE_HOST_NAME" in env


def test_harness_variables_are_read_by_harness_settings(nix_eval: NixEval) -> None:
    env = harness_environment(nix_eval)
    assert set(env) - env_names(settings_class("HarnessSettings")) == set()


def test_harness_variables_parse_to_the_module_values(
    nix_eval: NixEval, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = load(settings_class("HarnessSettings"), harness_environment(nix_eval), monkeypatch)
    assert harness.agent_name == "alice"
    assert str(harness.socket) == "/run/hive/mcp.sock"
    assert str(harness.state_dir) == "/state"
    assert harness.default_model == "sonnet"
    assert harness.web_port == 8879
    assert harness.claude_bin == "/nix/store/x/bin/claude"
    server = harness.extra_mcp_servers["fetch"]
    assert (server.command, server.args, server.env, server.allowedTools) == (
        "/bin/fetch",
        ["--x"],
        {"A": "b"},
        ["mcp__fetch__fetch"],
    )


def test_required_fields_are_set_by_the_modules(nix_eval: NixEval) -> None:
    daemon = set(daemon_environment(nix_eval))
    harness = set(harness_environment(nix_eval))
    assert env_names(settings_class("Settings"), required_only=True) - daemon == set()
    assert env_names(settings_class("HarnessSettings"), required_only=True) - harness == set()
    # A settings class the modules know nothing about must not require anything.
    for cls in settings_classes():
        if cls.__name__ not in {"Settings", "HarnessSettings"}:
            assert env_names(cls, required_only=True) == set(), cls.__name__


def test_every_variable_named_in_nix_files_is_read_by_some_settings_class() -> None:
    # Catches variables set outside lib.nix's two functions (a unit's extra environment,
    # the template, the flake).
    known: set[str] = set()
    for cls in settings_classes():
        known |= env_names(cls)
    # checks/ is left out: the test harness reads its own variables (HYPERHIVE_TEST_*).
    product = [REPO / "flake.nix"]
    for directory in ("modules", "overlays", "templates", "pkgs"):
        product += tracked(f"{directory}/*.nix")
    found: dict[str, set[str]] = {}
    for path in product:
        for name in ENV_NAME.findall(path.read_text()):
            found.setdefault(name, set()).add(str(path.relative_to(REPO)))
    unknown = {name: sorted(files) for name, files in found.items() if name not in known}
    assert unknown == {}
    assert "HYPERHIVE_GIT" in found  # the scan really sees the modules

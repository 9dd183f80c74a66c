"""One agent template: `nix flake init -t .#agent`, the module and the daemon agree.

The daemon seeds a new agent's proposed repo by copying every file of
Settings().agent_template_dir; the host module sets HYPERHIVE_AGENT_TEMPLATE_DIR to
lib.nix's agentTemplateDir; the flake's templates.agent.path is that same directory. If
these are one directory, the seeded files and the starter are byte-identical by
construction. The template's flake.nix is also evaluated here against the identity-file
contract (docs/nixos.md).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hyperhive.agents.names import agent_port
from hyperhive.lifecycle import repos
from hyperhive.settings import Settings
from nixeval import REPO, STUB_FLAKE, NixEval

TEMPLATE = REPO / "templates" / "agent"


@pytest.fixture
def daemon_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as the daemon builds them when nothing overrides the template dir."""
    monkeypatch.delenv("HYPERHIVE_AGENT_TEMPLATE_DIR", raising=False)
    return Settings()


def test_module_template_dir_is_the_daemons_default(
    nix_eval: NixEval, daemon_settings: Settings
) -> None:
    module_dir = Path(nix_eval("toString (import ./modules/lib.nix).agentTemplateDir"))
    assert module_dir.resolve() == daemon_settings.agent_template_dir.resolve() == TEMPLATE


def test_flake_template_is_the_same_directory(nix_eval: NixEval, daemon_settings: Settings) -> None:
    path = Path(nix_eval(f"toString ({STUB_FLAKE}).templates.agent.path"))
    assert path.resolve() == daemon_settings.agent_template_dir.resolve()
    assert nix_eval(f"({STUB_FLAKE}).templates.default.path == ({STUB_FLAKE}).templates.agent.path")


def test_module_passes_its_template_dir_to_the_daemon(nix_eval: NixEval) -> None:
    # hyperhive.nix hands "${cfg.agentTemplateDir}" (default: lib.nix's dir) to
    # daemonEnvironment; check the variable it lands in and the option's default.
    env = nix_eval(
        "builtins.attrNames ((import ./modules/lib.nix).daemonEnvironment {"
        ' cfg = { stateDir = "/var/lib/hyperhive"; backend = "nixos"; dashboardPort = 7000;'
        ' dashboardHost = "127.0.0.1"; operatorPronouns = "they/them"; flakeRef = "x";'
        " retentionDays = 30; agentMemoryMax = null; agentCpuQuota = null;"
        ' hostName = "alpha"; database = { url = null; passwordFile = null; }; };'
        ' git = "/git"; templateDir = "/the/template"; })'
    )
    assert "HYPERHIVE_AGENT_TEMPLATE_DIR" in env
    module = (REPO / "modules" / "hyperhive.nix").read_text()
    assert "default = hlib.agentTemplateDir;" in module
    assert 'templateDir = "${cfg.agentTemplateDir}";' in module


def test_template_holds_exactly_the_seeded_files() -> None:
    files = sorted(p.name for p in TEMPLATE.iterdir())
    assert files == ["agent.nix", "flake.nix"]
    # The daemon writes the identity file; a template copy of it would be seeded into
    # every agent and clash with the real one.
    assert not (TEMPLATE / "hyperhive-identity.json").exists()


def test_template_flake_has_only_the_hyperhive_input(nix_eval: NixEval) -> None:
    # The daemon overrides exactly this input; any other input would be fetched from the
    # network at build time.
    assert nix_eval("builtins.attrNames (import ./templates/agent/flake.nix).inputs") == [
        "hyperhive"
    ]


def evaluate_agent_flake(nix_eval: NixEval, directory: Path) -> dict[str, object]:
    """The template flake's nixosConfigurations with the real hyperhive lib (stub nixpkgs)."""
    configurations = nix_eval(
        f"""
        let
          hyperhive = {STUB_FLAKE};
          agent = (import {directory}/flake.nix).outputs {{ self = {{ }}; inherit hyperhive; }};
        in
          builtins.mapAttrs (name: system: {{
            moduleCount = builtins.length system.modules;
            agentModule = toString (builtins.elemAt system.modules 2);
            identity = ((builtins.elemAt system.modules 1) {{ lib = {{
              optionalAttrs = c: a: if c then a else {{ }};
              mkDefault = v: v;
            }}; }});
          }}) agent.nixosConfigurations
        """
    )
    assert isinstance(configurations, dict)
    return configurations


def test_template_builds_the_container_named_in_the_identity_file(
    nix_eval: NixEval, tmp_path: Path
) -> None:
    repo = tmp_path / "applied"
    shutil.copytree(TEMPLATE, repo)
    identity = {"name": "alice", "role": "agent", "port": agent_port("alice")}
    (repo / "hyperhive-identity.json").write_text(json.dumps(identity))
    got = evaluate_agent_flake(nix_eval, repo)
    assert list(got) == ["h-alice"]
    system = got["h-alice"]
    assert system == {
        "moduleCount": 3,  # harness-base, identity, agent.nix
        "agentModule": str(repo / "agent.nix"),
        "identity": {
            "hyperhive": {"name": "alice", "role": "agent", "port": agent_port("alice")},
            "nixpkgs": {"hostPlatform": "x86_64-linux"},
        },
    }


def test_template_honours_optional_identity_keys(nix_eval: NixEval, tmp_path: Path) -> None:
    repo = tmp_path / "applied"
    shutil.copytree(TEMPLATE, repo)
    identity = {
        "name": "manager",
        "role": "manager",
        "port": 8000,
        "system": "aarch64-linux",
        "operator_pronouns": "she/her",
    }
    (repo / "hyperhive-identity.json").write_text(json.dumps(identity))
    got = evaluate_agent_flake(nix_eval, repo)
    assert list(got) == ["hm1nd"]
    assert got["hm1nd"]["identity"] == {  # type: ignore[index]
        "hyperhive": {
            "name": "manager",
            "role": "manager",
            "port": 8000,
            "operatorPronouns": "she/her",
        },
        "nixpkgs": {"hostPlatform": "aarch64-linux"},
    }


def test_fresh_template_without_identity_builds_an_example_agent(
    nix_eval: NixEval, tmp_path: Path
) -> None:
    repo = tmp_path / "starter"
    shutil.copytree(TEMPLATE, repo)
    got = evaluate_agent_flake(nix_eval, repo)
    assert list(got) == ["h-example"]
    assert got["h-example"]["identity"]["hyperhive"]["port"] == agent_port("example")  # type: ignore[index]


@pytest.mark.parametrize(
    ("machine", "system"),
    [("x86_64", "x86_64-linux"), ("aarch64", "aarch64-linux"), ("arm64", "aarch64-linux")],
)
def test_daemons_identity_file_builds_the_agent_for_the_hosts_system(
    nix_eval: NixEval, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, machine: str, system: str
) -> None:
    # The identity file exactly as the daemon writes it, on an x86_64 and an aarch64 host:
    # without a `system` key the flake falls back to x86_64-linux and an aarch64 host
    # would build (and fail to run) x86_64 agents.
    monkeypatch.setattr("platform.machine", lambda: machine)
    repo = tmp_path / "applied"
    shutil.copytree(TEMPLATE, repo)
    (repo / repos.IDENTITY_FILE).write_text(repos.identity_text("alice"))
    got = evaluate_agent_flake(nix_eval, repo)
    assert got["h-alice"]["identity"]["nixpkgs"] == {"hostPlatform": system}  # type: ignore[index]

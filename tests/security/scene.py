"""A hive under attack, in this test's event loop: the daemon (local backend), its dashboard,
the victim agent alice with her harness and her page, a tombstone (carol), and the things a
hostile manager has queued for the operator (a spawn request, a config commit of alice's,
a question). Everything on 127.0.0.1:0 under the test's tmp_path."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.support import Running, harness_settings, running_harness, spawn_quiet
from hivetest import call, running_hive
from hyperhive.agents.names import AgentName
from hyperhive.credentials import KEY_FILE
from hyperhive.daemon import Hive
from hyperhive.dashboard import start_dashboard
from hyperhive.http import BoundApp, serve_app
from hyperhive.webui.app import CONTROLS, create_app
from standin.api import StandIn

from security.support import db_rows, repos

VICTIM = "alice"
TOMBSTONE = "carol"


@dataclass
class Scene:
    hive: Hive
    dash: BoundApp
    page: BoundApp
    """alice's web UI."""
    run: Running
    """alice's harness."""
    spawn_id: int
    commit_id: int
    question_id: int
    victim: str = VICTIM

    @property
    def host(self) -> Path:
        return self.hive.settings.host_socket

    def key_file(self, name: str) -> Path:
        """What the daemon wrote to `name`'s /run/hive/web-key."""
        return self.hive.lifecycle.paths(AgentName(name)).socket_dir / KEY_FILE

    def agent_reads_own_key(self, name: str) -> str:
        """What agent `name` reads from its own /run/hive: its page key, nothing more."""
        return self.key_file(name).read_text().strip()

    @property
    def dashboard_key(self) -> str:
        return self.hive.credentials.dashboard_key()

    def state(self) -> dict[str, Any]:
        """Everything an unauthorised request could change."""
        harness = self.run.harness
        controls = self.page.runner.app[CONTROLS]
        store = harness.store
        assert store is not None
        model = harness.settings.model_path
        return {
            "db": db_rows(self.hive.settings.broker_db),
            "repos": repos(self.hive.settings.state_dir),
            "agent trees": sorted(p.name for p in self.hive.settings.state_dir.glob("agents/*")),
            "model file": model.read_text() if model.exists() else None,
            "new session": harness.loop._new_session,
            "queued operator messages": controls.queue.qsize(),
            "login": controls.login.view.as_json(),
            "events": [(e.id, e.kind) for e in store.list_recent(2000)],
            "page keys": {n: self.key_file(n).read_text() for n in ("manager", self.victim)},
        }


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=manager", "-c", "user.email=m@hive", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()


@asynccontextmanager
async def hostile_scene(
    root: Path,
    claude_bin: Path,
    standin: StandIn,
    *,
    victim: str = VICTIM,
    page_port: int = 0,
    logged_in: bool = True,
    login_cmd: str | None = None,
) -> AsyncIterator[Scene]:
    """The hive, its dashboard, the victim's page (on `page_port`), what the manager queued."""
    async with running_hive(root / "hive", harness=False) as hive:
        dash = await start_dashboard(hive, port=0)
        hive.dashboard_url = dash.url  # what serve() does: `hive-c0re login` works
        try:
            host = hive.settings.host_socket
            sock = hive.lifecycle.paths(AgentName(victim)).socket
            await spawn_quiet(host, sock, victim)
            assert (await call(host, "spawn", name=TOMBSTONE))["kind"] == "ok"
            assert (await call(host, "destroy", name=TOMBSTONE))["kind"] == "ok"
            manager = hive.lifecycle.paths(AgentName("manager")).socket
            spawn = await call(manager, "request_spawn", name="eve", description="a helper")
            assert spawn["kind"] == "ok", spawn
            config = hive.lifecycle.paths(AgentName(victim)).config
            (config / "agent.nix").write_text((config / "agent.nix").read_text() + "# pwn\n")
            _git(config, "commit", "-qam", "give alice more")
            sha = _git(config, "rev-parse", "HEAD")
            commit = await call(
                manager, "request_apply_commit", agent=victim, commit_ref=sha, description="x"
            )
            assert commit["kind"] == "ok", commit
            question = await call(manager, "ask_operator", question="may I?", options=["yes"])
            assert question["kind"] == "question_queued", question
            settings = harness_settings(root / victim, victim, sock, claude_bin).model_copy(
                update={"web_key_file": sock.parent / KEY_FILE}
            )
            if login_cmd is not None:
                settings = settings.model_copy(update={"login_cmd": login_cmd})
            async with running_harness(
                root / victim, victim, sock, claude_bin, standin, settings, logged_in=logged_in
            ) as run:
                page = await serve_app(
                    create_app(run.harness, inbox_interval=0.5), "127.0.0.1", page_port, delays=[]
                )
                try:
                    yield Scene(
                        hive, dash, page, run, spawn["id"], commit["id"], question["id"], victim
                    )
                finally:
                    await page.stop()
        finally:
            await dash.stop()

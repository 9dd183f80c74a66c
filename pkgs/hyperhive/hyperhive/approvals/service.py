"""Approval requests, the operator's decisions and the git tag flow (SPEC §8).

apply_commit, in the agent's applied repo:
- request: the sha is resolved in the proposed repo, fetched, tagged ``proposal/<id>``;
- approve: ``approved/<id>``, fast-forward ``main``, rebuild; then ``deployed/<id>``, or
  on a failed build an annotated ``failed/<id>`` with the build output's tail and
  ``main`` reset to where it was;
- deny: an annotated ``denied/<id>`` carrying the operator's note.
So the applied repo's tags are the complete history of every decision.

Events: the operator's decision (approved, denied, or failed for an orphan, a destroyed
agent or a refused spawn) is one ``approval_resolved`` event to the manager, committed in
the same transaction as the status change. Carrying an approval out runs in the
background (approve returns at once; the dashboard shows the transient state) and
reports its outcome separately: ``spawned``/``spawn_failed`` for a spawn,
``rebuilt``/``deploy_failed`` for an apply_commit (whose row then turns ``failed``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from hyperhive.agents import store as agent_store
from hyperhive.agents.names import MANAGER, SYSTEM, AgentName, validate_name
from hyperhive.agents.registry import Registry
from hyperhive.approvals import store
from hyperhive.approvals.store import ApprovalKind, ApprovalStatus
from hyperhive.broker import store as broker_store
from hyperhive.broker.service import Broker
from hyperhive.db.connection import CHANGED, Database, Tx
from hyperhive.errors import Conflict, Forbidden, HyperhiveError, InvalidRequest, NotFound
from hyperhive.hub import Hub
from hyperhive.lifecycle import repos
from hyperhive.lifecycle.backends import TAIL_LINES, BuildFailed
from hyperhive.lifecycle.git import SHA_RE, GitError
from hyperhive.lifecycle.service import Lifecycle
from hyperhive.tasks import TaskSet
from hyperhive.wire.responses import ApprovalInfo

logger = logging.getLogger(__name__)

ORPHAN_NOTE = "agent state dir missing"
UNRECORDED_NOTE = (
    "a deploy begun by an older hive-c0re and cut short: where main was before it is not"
    " recorded, so it is not resumed; check main in the applied repo and request again"
)


DAEMON_OWNED = ("flake.nix", "flake.lock")
"""Files of an agent's repo only the daemon writes: an apply_commit may not change them."""


class Approvals:
    """Pending approvals and their resolution."""

    def __init__(
        self, db: Database, registry: Registry, broker: Broker, lifecycle: Lifecycle, hub: Hub
    ) -> None:
        self._hub = hub
        self._db = db
        self._registry = registry
        self._broker = broker
        self._lifecycle = lifecycle
        self._git = lifecycle.git
        self._tasks = TaskSet()
        # One deploy per agent at a time: two approved commits must not interleave.
        self._deploy_locks: dict[str, asyncio.Lock] = {}
        db.subscribe(CHANGED, self._changed_elsewhere)

    def _changed_elsewhere(self, payload: str, mine: bool) -> None:
        topic, _, raw_id = payload.partition(" ")
        if mine or topic != "approval" or not raw_id.isdigit():
            return
        self._changed(int(raw_id))

    def _local(self, info: ApprovalInfo) -> bool:
        """Whether this host carries `info` out (the host that runs its agent)."""
        return info.host in ("", self._registry.host)

    def _check_local(self, info: ApprovalInfo) -> None:
        if not self._local(info):
            raise Conflict(
                f"approval #{info.id} ({info.kind_} {info.agent}) is carried out by host"
                f" {info.host}: decide it on that host's dashboard or with hive-c0re there"
            )

    async def claim_unhosted(self) -> int:
        """Approvals from before hosts existed (or all, on a one-host sqlite file) become
        this host's."""
        host, every = self._registry.host, not self._db.shared
        return await self._db.write(lambda conn: store.claim_approvals(conn, host, every=every))

    # -- reading -----------------------------------------------------------------------------

    def list_pending(self) -> list[ApprovalInfo]:
        """Pending approvals, oldest first."""
        return self._db.read(store.list_pending)

    def get(self, approval_id: int) -> ApprovalInfo:
        """One approval, or NotFound."""
        info = self._db.read(lambda conn: store.find_approval(conn, approval_id))
        if info is None:
            raise NotFound(f"no approval #{approval_id}")
        return info

    async def diff(self, approval_id: int) -> str:
        """What the approval deploys, as a unified diff.

        apply_commit: from what is deployed now to the approval's commit. spawn: "" for a
        fresh agent (the template itself); for a revive, from the template to the kept
        applied commit it redeploys (pinned at request time in fetched_sha).
        """
        info = self.get(approval_id)
        if info.kind_ == ApprovalKind.SPAWN:
            if not info.fetched_sha:
                return ""
            return await self._lifecycle.revive_diff(info.agent, info.fetched_sha)
        if info.kind_ != ApprovalKind.APPLY_COMMIT or not info.fetched_sha:
            return ""
        applied = self._lifecycle.paths(validate_name(info.agent)).applied
        if not (applied / ".git").exists():
            return ""
        return await self._git.diff(applied, "refs/heads/main", info.fetched_sha)

    def _changed(self, approval_id: int) -> None:
        self._hub.publish("approval", self.get(approval_id).model_dump(by_alias=True))

    async def reap_orphans(self) -> list[int]:
        """Fail pending apply_commits whose agent's state dir disappeared; their ids."""
        failed: list[int] = []
        missing = set()
        # Runs at every dashboard render: look at each agent once, build rows only if needed.
        for agent in self._db.read(store.pending_commit_agents):
            record = self._registry.find(agent)
            if record is not None and not self._registry.is_local(record):
                continue  # its state lives on the host that runs it
            try:
                root = self._lifecycle.paths(validate_name(agent)).root
            except InvalidRequest:
                continue
            if not root.exists():
                missing.add(agent)
        if not missing:
            return failed
        for info in self.list_pending():
            if info.kind_ != ApprovalKind.APPLY_COMMIT or info.agent not in missing:
                continue
            if not self._local(info):
                continue
            if await self._decide(info, ApprovalStatus.FAILED, ORPHAN_NOTE):
                failed.append(info.id)
        return failed

    # -- requests ------------------------------------------------------------------------------

    async def request_spawn(self, raw_name: str, description: str) -> int:
        """Queue a spawn (or a revive of a kept agent) for the operator."""
        name = validate_name(raw_name)
        existing = self._registry.find(name)
        if existing is not None and existing.live:
            raise Conflict(f"agent {name!r} already exists")
        for pending in self.list_pending():
            if pending.agent == name and pending.kind_ == ApprovalKind.SPAWN:
                raise Conflict(f"a spawn of {name!r} is already pending (approval #{pending.id})")
        repos.check_adoptable(self._lifecycle.paths(name))
        # A revive redeploys the kept applied repo: pin its commit, so the operator's diff
        # (template -> that commit) is exactly what an approval deploys.
        kept = await self._lifecycle.kept_head(name)
        now = int(time.time())
        approval_id = await self._db.write(
            lambda conn: store.insert_approval(
                conn,
                agent=name,
                kind=ApprovalKind.SPAWN,
                description=description,
                now=now,
                fetched_sha=kept,
                host=self._registry.host,
            )
        )
        self._changed(approval_id)
        return approval_id

    async def request_apply_commit(self, raw_agent: str, commit_ref: str, description: str) -> int:
        """Resolve a commit of the proposed repo, fetch and tag it, queue it for approval."""
        name = validate_name(raw_agent)
        record = self._registry.get(name)
        self._lifecycle.check_local(record)
        if not record.live:
            raise Conflict(f"agent {name!r} is destroyed; revive it before changing its config")
        ref = commit_ref.strip().lower()
        if not SHA_RE.fullmatch(ref):
            raise InvalidRequest(
                f"commit_ref {commit_ref[:64]!r} is not a commit sha: pass 7-40 hex digits"
                " (git rev-parse HEAD in the proposed repo), not a branch or tag name"
            )
        paths = self._lifecycle.paths(name)
        if not repos.is_real_dir(paths.applied / ".git"):
            raise Conflict(f"agent {name!r} has no config repos yet; rebuild it first")
        # git never runs in the proposed repo (the manager writes it, hooks and config
        # included): it reads a private snapshot and fetches from that.
        sha = await repos.fetch_proposal(self._git, paths, ref)
        # A ref that merely looks like hex (a branch named "deadbeef") resolves to a sha
        # that does not start with it: refuse it like any other branch name.
        if sha is None or not sha.startswith(ref):
            raise NotFound(
                f"no commit {ref} in {name}'s proposed repo: commit your change in"
                f" /agents/{name} first, then pass its sha"
            )
        changed = await self._git.changed_paths(paths.applied, "refs/heads/main", sha, DAEMON_OWNED)
        if changed:
            # The nixos backend evaluates the applied flake as root: an input the manager
            # adds (`path:` to any host file) would be copied into the world-readable store.
            raise Forbidden(
                f"commit {sha[:12]} changes {', '.join(changed)}: the daemon owns the agent's"
                " flake; change agent.nix only (and the files it imports)"
            )
        now = int(time.time())
        approval_id = await self._db.write(
            lambda conn: store.insert_approval(
                conn,
                agent=name,
                kind=ApprovalKind.APPLY_COMMIT,
                description=description,
                now=now,
                commit_ref=ref,
                fetched_sha=sha,
                host=self._registry.host,
            )
        )
        await self._git.tag(
            paths.applied, f"proposal/{approval_id}", sha, description or f"proposal #{approval_id}"
        )
        self._changed(approval_id)
        logger.info("apply_commit #%d for %s: %s", approval_id, name, sha)
        return approval_id

    # -- decisions -----------------------------------------------------------------------------

    async def _decide(
        self,
        info: ApprovalInfo,
        to: ApprovalStatus,
        note: str | None = None,
        *,
        allowed_from: tuple[ApprovalStatus, ...] = (ApprovalStatus.PENDING,),
        also: Callable[[Tx], object] | None = None,
    ) -> bool:
        """Resolve an approval and queue its one approval_resolved event, atomically.

        The status change, the event to the manager (and `also`, e.g. the spawned agent's
        row) commit in one transaction: a daemon killed at any instant leaves either
        nothing or all of them, never a decision the manager is not told about.
        """
        now = int(time.time())
        body = json.dumps(
            {
                "event": "approval_resolved",
                "id": info.id,
                "agent": info.agent,
                "kind": info.kind_,
                "status": to.value,
                "note": note,
            },
            sort_keys=True,
        )

        def decide(conn: Tx) -> int | None:
            if not store.transition(
                conn, info.id, to=to, now=now, note=note, allowed_from=allowed_from
            ):
                return None
            if also is not None:
                also(conn)
            return broker_store.insert_message(
                conn, sender=SYSTEM, recipient=MANAGER, body=body, now=now
            )

        message_id = await self._db.write(decide)
        if message_id is None:
            return False
        self._broker.committed(message_id, SYSTEM, MANAGER, body, now)
        self._changed(info.id)
        return True

    async def approve(self, approval_id: int) -> ApprovalInfo:
        """Approve; the spawn or deploy then runs in the background. Twice acts once."""
        info = self.get(approval_id)
        if info.status != ApprovalStatus.PENDING:
            raise Conflict(f"approval #{approval_id} is already {info.status}")
        self._check_local(info)
        name = validate_name(info.agent)
        if info.kind_ == ApprovalKind.SPAWN:
            try:
                record, revived = self._lifecycle.spawn_record(name)
                if await self._lifecycle.kept_head(name) != info.fetched_sha:
                    raise Conflict(
                        f"what a spawn of {name!r} would deploy changed since the request;"
                        " ask for the spawn again to see its diff"
                    )
            except HyperhiveError as exc:
                note = f"spawn refused: {exc.message}"
                await self._decide(info, ApprovalStatus.FAILED, note)
                raise
            # The agent's row (state spawning) commits with the decision: a restarted
            # daemon finishes the spawn of every agent it finds in state spawning.
            try:
                decided = await self._decide(
                    info,
                    ApprovalStatus.APPROVED,
                    also=lambda conn: agent_store.spawn_agent(conn, record),
                )
            except Conflict as exc:
                # Another host (or request) took the name since spawn_record looked.
                await self._decide(info, ApprovalStatus.FAILED, f"spawn refused: {exc.message}")
                raise
            if not decided:
                raise Conflict(f"approval #{approval_id} was resolved meanwhile")
            self._registry.remember(record)
            self._tasks.spawn(self._finish_spawn(info, revived), f"approval-{approval_id}")
        else:
            if not await self._decide(info, ApprovalStatus.APPROVED):
                raise Conflict(f"approval #{approval_id} was resolved meanwhile")
            self._tasks.spawn(self._deploy(info), f"approval-{approval_id}")
        return self.get(approval_id)

    async def deny(self, approval_id: int, note: str | None) -> ApprovalInfo:
        """Deny a pending approval with an optional note (tagged denied/<id>)."""
        info = self.get(approval_id)
        if info.status == ApprovalStatus.PENDING:
            self._check_local(info)
        if not await self._decide(info, ApprovalStatus.DENIED, note):
            raise Conflict(f"approval #{approval_id} is already {self.get(approval_id).status}")
        if info.kind_ == ApprovalKind.APPLY_COMMIT and info.fetched_sha:
            applied = self._lifecycle.paths(validate_name(info.agent)).applied
            try:
                await self._git.tag(
                    applied, f"denied/{approval_id}", info.fetched_sha, note or "denied"
                )
            except GitError:
                logger.exception("tagging denied/%d failed", approval_id)
        return self.get(approval_id)

    async def fail_pending_for(self, agent: str, note: str) -> list[int]:
        """Fail every pending approval of `agent` (it was destroyed); their ids."""
        failed: list[int] = []
        for info in self.list_pending():
            if not self._local(info):
                continue
            if info.agent == agent and await self._decide(info, ApprovalStatus.FAILED, note):
                failed.append(info.id)
        return failed

    async def resume(self) -> list[int]:
        """At startup: carry on approved apply_commits a killed daemon left undeployed."""
        resumed: list[int] = []
        approved = self._db.read(
            lambda conn: store.list_with_status(
                conn, ApprovalStatus.APPROVED, ApprovalKind.APPLY_COMMIT
            )
        )
        for info in approved:
            if not self._local(info):
                continue
            try:
                applied = self._lifecycle.paths(validate_name(info.agent)).applied
            except InvalidRequest:
                continue
            if not (applied / ".git").exists():
                await self._fail(info.id, ORPHAN_NOTE)
                continue
            done = [
                tag
                for tag in (f"deployed/{info.id}", f"failed/{info.id}")
                if await self._git.resolve_commit(applied, f"refs/tags/{tag}")
            ]
            if not done and await self._begun_unrecorded(info.id, applied):
                assert info.fetched_sha is not None
                await self._failed_deploy(info, applied, info.fetched_sha, UNRECORDED_NOTE)
            elif not done:
                logger.info("approval #%d was approved but not deployed: deploying now", info.id)
                self._tasks.spawn(self._deploy(info), f"approval-{info.id}")
                resumed.append(info.id)
        return resumed

    async def _begun_unrecorded(self, approval_id: int, applied: Path) -> bool:
        """Whether an older hive-c0re began this deploy (its approved/<id> tag exists) and
        recorded where to roll back to only in that tag's message, which is not read."""
        if self._db.read(lambda conn: store.rollback_sha(conn, approval_id)) is not None:
            return False
        return bool(await self._git.resolve_commit(applied, f"refs/tags/approved/{approval_id}"))

    # -- background work -----------------------------------------------------------------------

    async def wait_idle(self) -> None:
        """Wait until approved spawns and deploys have finished."""
        await self._tasks.wait_idle()

    async def close(self) -> None:
        """Cancel background work (daemon shutdown)."""
        await self._tasks.close()

    async def _finish_spawn(self, info: ApprovalInfo, revived: bool) -> None:
        try:
            await self._lifecycle.finish_spawn(AgentName(info.agent), revived)
        except Exception as exc:  # noqa: BLE001 - a task boundary; finish_spawn logged it
            # The decision was reported; the outcome goes out as finish_spawn's
            # spawn_failed event, and the approval row says what happened.
            detail = getattr(exc, "tail", None) or getattr(exc, "message", None) or repr(exc)
            await self._fail(info.id, f"spawn failed: {detail}")

    async def _deploy(self, info: ApprovalInfo) -> None:
        name = validate_name(info.agent)
        lock = self._deploy_locks.setdefault(name, asyncio.Lock())
        async with lock:
            try:
                await self._deploy_locked(info, name)
            except Exception:
                logger.exception("deploying approval #%d failed unexpectedly", info.id)
                await self._fail(info.id, "internal error while deploying; see the daemon log")

    async def _rollback_point(self, approval_id: int, applied: Path) -> str:
        """main before this approval's fast-forward. Recorded on its row once, when its
        deploy first begins (before any tag or merge): a deploy resumed after a restart
        rolls back to that same commit. Never read back from a tag's message: a tag left
        by an earlier database (a restored backup hands its ids out again) names another."""
        head = await self._git.head(applied)
        kept = await self._db.write(lambda conn: store.record_rollback_sha(conn, approval_id, head))
        assert kept is not None
        return kept

    async def _deploy_locked(self, info: ApprovalInfo, name: AgentName) -> None:
        sha = info.fetched_sha
        assert sha is not None
        applied = self._lifecycle.paths(name).applied
        previous = await self._rollback_point(info.id, applied)
        await self._git.tag(applied, f"approved/{info.id}", sha, f"approved; main was {previous}")
        if not await self._git.is_ancestor(applied, previous, sha):
            note = (
                f"{sha[:12]} is not a fast-forward of the deployed main ({previous[:12]}):"
                f" merge /applied/{name} main into /agents/{name}, commit, and request"
                " again"
            )
            await self._failed_deploy(info, applied, sha, note)
            return
        await self._git.run(applied, "merge", "-q", "--ff-only", sha)
        try:
            await self._lifecycle.rebuild(name)
        except Exception as exc:  # noqa: BLE001 - any failure rolls main back; logged below
            tail = exc.tail if isinstance(exc, BuildFailed) else str(getattr(exc, "message", exc))
            tail = "\n".join(tail.splitlines()[-TAIL_LINES:]) or type(exc).__name__
            logger.warning(
                "approval #%d: build of %s failed; main back to %s", info.id, name, previous[:12]
            )
            await self._git.run(applied, "reset", "-q", "--hard", previous)
            await self._failed_deploy(info, applied, sha, f"build failed:\n{tail}")
            return
        await self._git.tag(applied, f"deployed/{info.id}", sha)
        logger.info("approval #%d deployed %s to %s", info.id, sha[:12], name)

    async def _failed_deploy(self, info: ApprovalInfo, applied: Path, sha: str, note: str) -> None:
        await self._git.tag(applied, f"failed/{info.id}", sha, note)
        await self._fail(info.id, note)
        await self._broker.system_event(
            MANAGER, "deploy_failed", id=info.id, agent=info.agent, note=note
        )

    async def _fail(self, approval_id: int, note: str) -> bool:
        """approved -> failed (the decision was already reported)."""
        now = int(time.time())
        done = await self._db.write(
            lambda conn: store.transition(
                conn,
                approval_id,
                to=ApprovalStatus.FAILED,
                now=now,
                note=note,
                allowed_from=(ApprovalStatus.APPROVED,),
            )
        )
        if done:
            self._changed(approval_id)
        return done

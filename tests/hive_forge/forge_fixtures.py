"""Shared test data for hive-forge: the seeded hive repo, tokens and the CLI run result."""

from __future__ import annotations

from dataclasses import dataclass

from forgejo_standin import ForgejoStandin, StandinIssue, StandinRepo, StandinServer

TOKEN = "d1c3a5e7b9f0aa11bb22cc33dd44ee55ff667788"
READONLY_TOKEN = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"
REPO = "hive/core"


@dataclass
class Seeded:
    """The stand-in plus handles on the objects tests poke at."""

    standin: ForgejoStandin
    server: StandinServer
    repo: StandinRepo
    issue: StandinIssue  # #42, three comments, label "bug"
    pull: StandinIssue  # #7, a PR from agent/fix-7 into main

    def label_id(self, name: str) -> int:
        return next(i for i, label in self.standin.labels.items() if label.name == name)


def seed(standin: ForgejoStandin) -> tuple[StandinRepo, StandinIssue, StandinIssue]:
    """A repo `hive/core` with users, labels, issue #42 and PR #7."""
    for login in ("damocles", "hm1nd", "alice"):
        standin.add_user(login)
    standin.add_token(TOKEN, "damocles")
    standin.add_token(READONLY_TOKEN, "alice", write=False)
    repo = standin.add_repo("hive", "core", org=True)
    for name in ("bug", "feature", "needs-review", "Docs"):
        standin.add_label(repo, name)
    issue = standin.add_issue(
        repo, 42, "Harness drops the last line", "Steps:\n1. run\n2. look\n", poster="hm1nd"
    )
    issue.label_ids.append(next(i for i, lb in standin.labels.items() if lb.name == "bug"))
    standin.add_comment(issue, "alice", "Confirmed on main.")
    standin.add_comment(issue, "damocles", "Looking — **bold** claim:\n\n```\ncode\n```")
    standin.add_comment(issue, "hm1nd", "Thanks ✓")
    repo.branches = [("main", "a" * 40), ("agent/fix-7", "b" * 40), ("deployed/1", "c" * 40)]
    pull = standin.add_issue(repo, 7, "Fix the last line", "Fixes #42", poster="damocles")
    pull.is_pull, pull.head = True, "agent/fix-7"
    return repo, issue, pull


@dataclass
class Run:
    """What one hive-forge run produced."""

    code: int
    out: str
    err: str

"""A stand-in for Forgejo's REST API (`/api/v1`), for testing hive-forge.

Forgejo itself cannot run here, so this aiohttp app serves the endpoints hive-forge uses with
Forgejo's JSON shapes, status codes and quirks, taken from Forgejo's routers and structs:

- auth: `Authorization: token <t>` (or `bearer`); a missing header gets 401 "token is
  required", an unknown token 401 "user does not exist [uid: 0, name: ]"; a token without
  write scope gets 403 on writes. (Real Forgejo lets anonymous GETs of public repos through;
  every repo here is private to the test's tokens.)
- errors: `{"message", "url"}`, and 404s add `"errors": []` with "The target couldn't be
  found."; binding failures are 422 "[Field]: Required"; bad label lists 400.
- pagination: `page` (1-based) and `limit` (default 30, capped at 50) with `Link` (next,
  last, first, prev — built on ROOT_URL, which may differ from the address served) and
  `X-Total-Count`. Issue comments are NOT paged, exactly like Forgejo: all of them, with
  `X-Total-Count` and no `Link`. `paging` picks which headers a list answer carries, for
  the servers that differ: "forgejo" (both), "link" (only `Link`), "total" (only
  `X-Total-Count`: Gitea and older Forgejo on label lists) and "none" (a proxy that
  strips both); `max_page_size` is Forgejo's [api] MAX_RESPONSE_ITEMS (default 50).
- PATCH issue answers 201 (sic) with the issue; an unknown assignee is a 500 with an empty
  message (production Forgejo hides the cause from non-admins); changing a merged PR's state
  is 412. Issues and PRs share one index.

It records every request (method, path, query, JSON body) so tests can check the exact calls.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

SWAGGER_PATH = "api/swagger"
DEFAULT_PAGE_SIZE = 30
MAX_PAGE_SIZE = 50
NOT_FOUND_MESSAGE = "The target couldn't be found."
CREATED_AT = "2026-11-20T09:00:00Z"

JSONDict = dict[str, Any]
PAGING_MODES = ("forgejo", "link", "total", "none")
LOGIN = web.RequestKey("login", str)


@dataclass
class Recorded:
    """One request as the stand-in saw it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    authorization: str | None


@dataclass
class StandinUser:
    id: int
    login: str
    full_name: str = ""


@dataclass
class StandinLabel:
    id: int
    name: str
    color: str = "e11d21"
    description: str = ""
    org: str | None = None


@dataclass
class StandinComment:
    id: int
    poster: str
    body: str
    created_at: str = CREATED_AT


@dataclass
class StandinIssue:
    number: int
    title: str
    body: str
    poster: str
    state: str = "open"
    label_ids: list[int] = field(default_factory=list)
    assignees: list[str] = field(default_factory=list)
    comments: list[StandinComment] = field(default_factory=list)
    is_pull: bool = False
    head: str = ""
    base: str = "main"
    merged: bool = False


@dataclass
class StandinRepo:
    id: int
    owner: str
    name: str
    issues: dict[int, StandinIssue] = field(default_factory=dict)
    label_ids: list[int] = field(default_factory=list)
    branches: list[tuple[str, str]] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class Grant:
    """What a token may do: act as `login`, with or without the write:issue/repository and
    read:organization scopes."""

    login: str
    write: bool = True
    read_organization: bool = True


class ForgejoStandin:
    """State plus the aiohttp app. Mutate state only before or between CLI runs."""

    def __init__(self) -> None:
        self.root_url = "http://127.0.0.1/"  # replaced with the real address once bound
        self.users: dict[str, StandinUser] = {}
        self.tokens: dict[str, Grant] = {}
        self.repos: dict[str, StandinRepo] = {}
        self.orgs: set[str] = set()
        self.labels: dict[int, StandinLabel] = {}
        self.requests: list[Recorded] = []
        self.paging = "forgejo"  # one of PAGING_MODES: which headers list answers carry
        self.max_page_size = MAX_PAGE_SIZE
        self._ids = 0

    # --- seeding ------------------------------------------------------------------------

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def add_user(self, login: str, full_name: str = "") -> StandinUser:
        user = StandinUser(self._next_id(), login, full_name)
        self.users[login.lower()] = user
        return user

    def add_token(
        self, token: str, login: str, *, write: bool = True, read_organization: bool = True
    ) -> None:
        self.tokens[token] = Grant(login, write, read_organization)

    def add_repo(self, owner: str, name: str, *, org: bool = False) -> StandinRepo:
        if org:
            self.orgs.add(owner.lower())
        elif owner.lower() not in self.users:
            self.add_user(owner)
        repo = StandinRepo(self._next_id(), owner, name)
        self.repos[repo.full_name.lower()] = repo
        return repo

    def add_label(self, repo: StandinRepo | None, name: str, *, org: str | None = None) -> int:
        label = StandinLabel(self._next_id(), name, org=org.lower() if org else None)
        self.labels[label.id] = label
        if repo is not None:
            repo.label_ids.append(label.id)
        return label.id

    def add_issue(
        self, repo: StandinRepo, number: int, title: str, body: str = "", *, poster: str = ""
    ) -> StandinIssue:
        issue = StandinIssue(number, title, body, poster or repo.owner)
        repo.issues[number] = issue
        return issue

    def add_comment(self, issue: StandinIssue, poster: str, body: str) -> StandinComment:
        comment = StandinComment(self._next_id(), poster, body)
        issue.comments.append(comment)
        return comment

    def requests_to(self, method: str, path_suffix: str = "") -> list[Recorded]:
        """Recorded requests with this method whose path ends with `path_suffix`."""
        return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]

    # --- JSON shapes (Forgejo's modules/structs) ----------------------------------------

    def _html(self, path: str) -> str:
        return f"{self.root_url}{path}"

    def user_json(self, login: str) -> JSONDict:
        user = self.users.get(login.lower()) or StandinUser(0, login)
        return {
            "id": user.id,
            "login": user.login,
            "login_name": "",
            "source_id": 0,
            "full_name": user.full_name,
            "email": f"{user.login}@noreply.localhost",
            "avatar_url": self._html(f"avatars/{user.id}"),
            "html_url": self._html(user.login),
            "language": "",
            "is_admin": False,
            "last_login": "0001-01-01T00:00:00Z",
            "created": CREATED_AT,
            "restricted": False,
            "active": True,
            "prohibit_login": False,
            "location": "",
            "pronouns": "",
            "website": "",
            "description": "",
            "visibility": "public",
            "followers_count": 0,
            "following_count": 0,
            "starred_repos_count": 0,
            "username": user.login,
        }

    def label_json(self, label_id: int, repo: StandinRepo | None) -> JSONDict:
        label = self.labels[label_id]
        if label.org:
            url = self._html(f"api/v1/orgs/{label.org}/labels/{label.id}")
        else:
            assert repo is not None
            url = self._html(f"api/v1/repos/{repo.full_name}/labels/{label.id}")
        return {
            "id": label.id,
            "name": label.name,
            "exclusive": False,
            "is_archived": False,
            "color": label.color,
            "description": label.description,
            "url": url,
        }

    def issue_json(self, repo: StandinRepo, issue: StandinIssue) -> JSONDict:
        kind = "pulls" if issue.is_pull else "issues"
        assignees = [self.user_json(login) for login in issue.assignees]
        return {
            "id": 1000 + issue.number,
            "url": self._html(f"api/v1/repos/{repo.full_name}/issues/{issue.number}"),
            "html_url": self._html(f"{repo.full_name}/{kind}/{issue.number}"),
            "number": issue.number,
            "user": self.user_json(issue.poster),
            "original_author": "",
            "original_author_id": 0,
            "title": issue.title,
            "body": issue.body,
            "ref": "",
            "assets": [],
            "labels": [self.label_json(i, repo) for i in issue.label_ids],
            "milestone": None,
            "assignee": assignees[0] if assignees else None,
            # Forgejo leaves the slice nil, so JSON null, when nobody is assigned.
            "assignees": assignees or None,
            "state": issue.state,
            "is_locked": False,
            "comments": len(issue.comments),
            "created_at": CREATED_AT,
            "updated_at": CREATED_AT,
            "closed_at": CREATED_AT if issue.state == "closed" else None,
            "due_date": None,
            "pull_request": (
                {
                    "merged": issue.merged,
                    "merged_at": CREATED_AT if issue.merged else None,
                    "draft": False,
                    "html_url": self._html(f"{repo.full_name}/pulls/{issue.number}"),
                }
                if issue.is_pull
                else None
            ),
            "repository": {
                "id": repo.id,
                "name": repo.name,
                "owner": repo.owner,
                "full_name": repo.full_name,
            },
            "pin_order": 0,
        }

    def comment_json(self, repo: StandinRepo, issue: StandinIssue, c: StandinComment) -> JSONDict:
        kind = "pulls" if issue.is_pull else "issues"
        issue_html = self._html(f"{repo.full_name}/{kind}/{issue.number}")
        return {
            "id": c.id,
            "html_url": f"{issue_html}#issuecomment-{c.id}",
            "pull_request_url": issue_html if issue.is_pull else "",
            "issue_url": "" if issue.is_pull else issue_html,
            "user": self.user_json(c.poster),
            "original_author": "",
            "original_author_id": 0,
            "body": c.body,
            "assets": [],
            "created_at": c.created_at,
            "updated_at": c.created_at,
        }

    def repo_json(self, repo: StandinRepo) -> JSONDict:
        return {
            "id": repo.id,
            "owner": self.user_json(repo.owner),
            "name": repo.name,
            "full_name": repo.full_name,
            "description": "",
            "empty": False,
            "private": True,
            "fork": False,
            "html_url": self._html(repo.full_name),
            "clone_url": self._html(f"{repo.full_name}.git"),
            "default_branch": "main",
            "has_issues": True,
            "has_pull_requests": True,
            "open_issues_count": sum(
                1 for i in repo.issues.values() if not i.is_pull and i.state == "open"
            ),
            "open_pr_counter": sum(
                1 for i in repo.issues.values() if i.is_pull and i.state == "open"
            ),
        }

    def branch_json(self, repo: StandinRepo, name: str, sha: str) -> JSONDict:
        return {
            "name": name,
            "commit": {
                "id": sha,
                "message": f"tip of {name}\n",
                "url": self._html(f"{repo.full_name}/commit/{sha}"),
                "author": {"name": repo.owner, "email": "", "username": repo.owner},
                "committer": {"name": repo.owner, "email": "", "username": repo.owner},
                "verification": None,
                "timestamp": CREATED_AT,
                "added": None,
                "removed": None,
                "modified": None,
            },
            "protected": False,
            "required_approvals": 0,
            "enable_status_check": False,
            "status_check_contexts": [],
            "user_can_push": True,
            "user_can_merge": True,
            "effective_branch_protection_name": "",
        }

    def pull_json(self, repo: StandinRepo, issue: StandinIssue) -> JSONDict:
        base = self.issue_json(repo, issue)
        head_sha = dict(repo.branches).get(issue.head, "0" * 40)
        base_sha = dict(repo.branches).get(issue.base, "0" * 40)
        return {
            "id": 2000 + issue.number,
            "url": base["html_url"],
            "number": issue.number,
            "user": base["user"],
            "title": issue.title,
            "body": issue.body,
            "labels": base["labels"],
            "milestone": None,
            "project": None,
            "assignee": base["assignee"],
            "assignees": base["assignees"],
            "requested_reviewers": None,
            "requested_reviewers_teams": None,
            "state": issue.state,
            "draft": False,
            "is_locked": False,
            "comments": len(issue.comments),
            "review_comments": 0,
            "additions": 3,
            "deletions": 1,
            "changed_files": 1,
            "html_url": base["html_url"],
            "diff_url": f"{base['html_url']}.diff",
            "patch_url": f"{base['html_url']}.patch",
            "mergeable": not issue.merged,
            "merged": issue.merged,
            "merged_at": CREATED_AT if issue.merged else None,
            "merge_commit_sha": head_sha if issue.merged else None,
            "merged_by": self.user_json(repo.owner) if issue.merged else None,
            "allow_maintainer_edit": False,
            "base": {
                "label": issue.base,
                "ref": issue.base,
                "sha": base_sha,
                "repo_id": repo.id,
                "repo": self.repo_json(repo),
            },
            "head": {
                "label": issue.head,
                "ref": issue.head,
                "sha": head_sha,
                "repo_id": repo.id,
                "repo": self.repo_json(repo),
            },
            "merge_base": base_sha,
            "due_date": None,
            "created_at": CREATED_AT,
            "updated_at": CREATED_AT,
            "closed_at": CREATED_AT if issue.state == "closed" else None,
            "pin_order": 0,
            "flow": 0,
        }

    # --- responses ----------------------------------------------------------------------

    def _error(self, status: int, message: str) -> web.Response:
        return web.json_response(
            {"message": message, "url": self._html(SWAGGER_PATH)}, status=status
        )

    def _not_found(self, *errors: str) -> web.Response:
        return web.json_response(
            {"errors": list(errors), "message": NOT_FOUND_MESSAGE, "url": self._html(SWAGGER_PATH)},
            status=404,
        )

    def _paged(self, request: web.Request, items: list[JSONDict]) -> web.Response:
        page = _form_int(request, "page")
        limit = _form_int(request, "limit")
        page = page if page > 0 else 1
        limit = DEFAULT_PAGE_SIZE if limit <= 0 else min(limit, self.max_page_size)
        total = len(items)
        chunk = items[(page - 1) * limit : page * limit]
        total_pages = max(1, math.ceil(total / limit))

        def link(target: int, rel: str) -> str:
            query = dict(request.query)
            query["page"] = str(target)
            return f'<{self.root_url}{request.path.lstrip("/")}?{urlencode(query)}>; rel="{rel}"'

        links = []
        if page < total_pages:
            links += [link(page + 1, "next"), link(total_pages, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        headers = {"X-Total-Count": str(total)}
        if links:
            headers["Link"] = ",".join(links)
        return web.json_response(chunk, headers=self._paging_headers(headers))

    def _paging_headers(self, headers: dict[str, str]) -> dict[str, str]:
        """Keep the paging headers the current `paging` mode sends."""
        assert self.paging in PAGING_MODES, self.paging
        kept = {"forgejo": ("Link", "X-Total-Count"), "link": ("Link",)}
        kept |= {"total": ("X-Total-Count",), "none": ()}
        return {k: v for k, v in headers.items() if k in kept[self.paging]}

    # --- app ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record_and_auth])
        repo = "/api/v1/repos/{owner}/{repo}"
        app.router.add_get(repo, self._get_repo)
        app.router.add_get(repo + "/issues/{index}", self._get_issue)
        app.router.add_patch(repo + "/issues/{index}", self._edit_issue)
        app.router.add_get(repo + "/issues/{index}/comments", self._list_comments)
        app.router.add_post(repo + "/issues/{index}/comments", self._create_comment)
        app.router.add_get(repo + "/issues/{index}/labels", self._issue_labels)
        app.router.add_post(repo + "/issues/{index}/labels", self._add_labels)
        app.router.add_put(repo + "/issues/{index}/labels", self._replace_labels)
        app.router.add_delete(repo + "/issues/{index}/labels", self._clear_labels)
        app.router.add_delete(repo + "/issues/{index}/labels/{identifier}", self._remove_label)
        app.router.add_get(repo + "/labels", self._repo_labels)
        app.router.add_get(repo + "/pulls/{index}", self._get_pull)
        app.router.add_get(repo + "/branches", self._branches)
        app.router.add_get("/api/v1/orgs/{org}/labels", self._org_labels)
        return app

    @web.middleware
    async def _record_and_auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        auth = request.headers.get("Authorization")
        self.requests.append(
            Recorded(request.method, request.path, dict(request.query), body, auth)
        )
        fields = (auth or "").split()
        if len(fields) != 2 or fields[0].lower() not in ("token", "bearer"):
            return self._error(401, "token is required")
        grant = self.tokens.get(fields[1])
        if grant is None:
            return self._error(401, "user does not exist [uid: 0, name: ]")
        if request.method != "GET" and not grant.write:
            return self._error(
                403, "token does not have at least one of required scope(s): [write:issue]"
            )
        if request.path.startswith("/api/v1/orgs/") and not grant.read_organization:
            return self._error(
                403, "token does not have at least one of required scope(s): [read:organization]"
            )
        request[LOGIN] = grant.login
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPNotFound:
            return self._not_found()
        return response

    def _repo(self, request: web.Request) -> StandinRepo | None:
        key = f"{request.match_info['owner']}/{request.match_info['repo']}".lower()
        return self.repos.get(key)

    def _issue(self, request: web.Request) -> tuple[StandinRepo | None, StandinIssue | None]:
        repo = self._repo(request)
        if repo is None:
            return None, None
        text = request.match_info["index"]
        # Forgejo's ParamsInt64 turns garbage into 0, which is never an issue.
        index = int(text) if text.isdigit() else 0
        return repo, repo.issues.get(index)

    async def _json_body(self, request: web.Request) -> tuple[Any, web.Response | None]:
        raw = await request.read()
        try:
            return (json.loads(raw) if raw else {}), None
        except ValueError as exc:
            return None, self._error(422, f"[]: {exc}")

    async def _get_repo(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        if repo is None:
            return self._not_found()
        return web.json_response(self.repo_json(repo))

    async def _get_issue(self, request: web.Request) -> web.Response:
        repo, issue = self._issue(request)
        if repo is None or issue is None:
            return self._not_found()
        return web.json_response(self.issue_json(repo, issue))

    async def _edit_issue(self, request: web.Request) -> web.Response:
        repo, issue = self._issue(request)
        if repo is None or issue is None:
            return self._not_found()
        form, error = await self._json_body(request)
        if error is not None:
            return error
        if not isinstance(form, dict):
            return self._error(
                422, "[]: json: cannot unmarshal into Go value of type EditIssueOption"
            )
        if "assignees" in form:
            names = form["assignees"]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                return self._error(422, "[Assignees]: json: cannot unmarshal into []string")
            if any(n.lower() not in self.users for n in names):
                # services/issue.UpdateAssignees → ErrUserNotExist → 500; production Forgejo
                # blanks 500 messages for non-admins.
                return self._error(500, "")
            issue.assignees = [self.users[n.lower()].login for n in dict.fromkeys(names)]
        if "state" in form and form["state"] is not None:
            if issue.is_pull and issue.merged:
                return self._error(
                    412, "cannot change state of this pull request, it was already merged"
                )
            # Forgejo compares with "closed" only: any other value means open.
            issue.state = "closed" if form["state"] == "closed" else "open"
        return web.json_response(self.issue_json(repo, issue), status=201)

    async def _list_comments(self, request: web.Request) -> web.Response:
        repo, issue = self._issue(request)
        if repo is None or issue is None:
            return self._not_found("issue does not exist")
        items = [self.comment_json(repo, issue, c) for c in issue.comments]
        headers = self._paging_headers({"X-Total-Count": str(len(items))})
        return web.json_response(items, headers=headers)

    async def _create_comment(self, request: web.Request) -> web.Response:
        form, error = await self._json_body(request)
        if error is not None:
            return error
        if not isinstance(form, dict) or not isinstance(form.get("body", ""), str):
            return self._error(422, "[Body]: json: cannot unmarshal into string")
        if not form.get("body"):
            return self._error(422, "[Body]: Required")
        repo, issue = self._issue(request)
        if repo is None or issue is None:
            return self._not_found("issue does not exist")
        comment = self.add_comment(issue, request[LOGIN], form["body"])
        return web.json_response(self.comment_json(repo, issue, comment), status=201)

    async def _issue_labels(self, request: web.Request) -> web.Response:
        repo, issue = self._issue(request)
        if repo is None or issue is None:
            return self._not_found()
        return web.json_response([self.label_json(i, repo) for i in issue.label_ids])

    async def _label_ids_from_form(
        self, request: web.Request, repo: StandinRepo
    ) -> tuple[list[int], web.Response | None]:
        form, error = await self._json_body(request)
        if error is not None:
            return [], error
        values = form.get("labels") if isinstance(form, dict) else None
        values = values or []
        ids: list[int] = []
        names: list[str] = []
        for value in values:
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                return [], self._error(400, "a label must be an integer or a string")
            if isinstance(value, str):
                names.append(value)
            else:
                ids.append(int(value))
        if ids and names:
            return [], self._error(400, "labels should be an array of strings or integers")
        usable = set(repo.label_ids) | {
            i for i, label in self.labels.items() if label.org == repo.owner.lower()
        }
        ids += [i for i in usable if self.labels[i].name in names]
        # Forgejo's GetLabelsByIDs silently drops ids that match nothing.
        return [i for i in dict.fromkeys(ids) if i in usable], None

    async def _add_labels(self, request: web.Request) -> web.Response:
        repo, issue = self._issue(request)
        if repo is None or issue is None:
            return self._not_found()
        ids, error = await self._label_ids_from_form(request, repo)
        if error is not None:
            return error
        issue.label_ids += [i for i in ids if i not in issue.label_ids]
        return web.json_response([self.label_json(i, repo) for i in issue.label_ids])

    async def _replace_labels(self, request: web.Request) -> web.Response:
        repo, issue = self._issue(request)
        if repo is None or issue is None:
            return self._not_found()
        ids, error = await self._label_ids_from_form(request, repo)
        if error is not None:
            return error
        issue.label_ids = ids
        return web.json_response([self.label_json(i, repo) for i in issue.label_ids])

    async def _clear_labels(self, request: web.Request) -> web.Response:
        repo, issue = self._issue(request)
        if repo is None or issue is None:
            return self._not_found()
        issue.label_ids = []
        return web.Response(status=204)

    async def _remove_label(self, request: web.Request) -> web.Response:
        repo, issue = self._issue(request)
        if repo is None or issue is None:
            return self._not_found()
        identifier = request.match_info["identifier"]
        # Forgejo looks the identifier up as a repo label name first, then as an id.
        by_name = [i for i in repo.label_ids if self.labels[i].name == identifier]
        if by_name:
            label_id = by_name[0]
        elif identifier.isdigit() and int(identifier) in self.labels:
            label_id = int(identifier)
        else:
            return self._error(
                422, f"label does not exist [repo_id: {repo.id}, name: {identifier}]"
            )
        if label_id in issue.label_ids:
            issue.label_ids.remove(label_id)
        return web.Response(status=204)

    async def _repo_labels(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        if repo is None:
            return self._not_found()
        return self._paged(request, [self.label_json(i, repo) for i in repo.label_ids])

    async def _org_labels(self, request: web.Request) -> web.Response:
        org = request.match_info["org"].lower()
        if org not in self.orgs:
            return self._not_found(f"org does not exist [id: 0, name: {org}]")
        ids = [i for i, label in self.labels.items() if label.org == org]
        return self._paged(request, [self.label_json(i, None) for i in ids])

    async def _get_pull(self, request: web.Request) -> web.Response:
        repo, issue = self._issue(request)
        if repo is None or issue is None or not issue.is_pull:
            return self._not_found("pull request does not exist")
        return web.json_response(self.pull_json(repo, issue))

    async def _branches(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        if repo is None:
            return self._not_found()
        items = [self.branch_json(repo, name, sha) for name, sha in repo.branches]
        return self._paged(request, items)


def _form_int(request: web.Request, name: str) -> int:
    # Go's ctx.FormInt: anything unparsable is 0.
    try:
        return int(request.query.get(name, "0"))
    except ValueError:
        return 0


class StandinServer:
    """Runs a `ForgejoStandin` on 127.0.0.1:<free port> in a thread with its own loop.

    A thread, not the test's loop, because hive-forge's `main()` runs its own `asyncio.run`.
    """

    def __init__(self, standin: ForgejoStandin, *, root_url: str | None = None) -> None:
        self.standin = standin
        self._root_url = root_url
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def __enter__(self) -> StandinServer:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(timeout=10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.standin.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self.standin.root_url = self._root_url or f"{self.url}/"

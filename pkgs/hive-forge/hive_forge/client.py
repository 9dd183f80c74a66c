"""Async client for the few Forgejo REST endpoints (`/api/v1`) that hive-forge uses.

Every failure surfaces as a `ForgeError` whose text is one line a human or an agent can act
on; the token never appears in it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypedDict, cast
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://localhost:3000"
DEFAULT_STATE_DIR = "/state"
TOKEN_FILE_NAME = "forge-token"  # noqa: S105  (a file name, not a secret)
# Forgejo caps `limit` at [api] MAX_RESPONSE_ITEMS (default 50); asking for more is harmless
# but asking for less costs round trips.
PAGE_LIMIT = 50
# A runaway Link chain must not loop forever: 1,000 pages of 50 is far beyond any hive repo.
MAX_PAGES = 1000
REQUEST_TIMEOUT_S = 30.0
_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_LINK_RE = re.compile(r'<([^>]*)>\s*;\s*rel="([^"]+)"')
_MESSAGE_MAX = 300


class ForgeError(Exception):
    """A failure the CLI reports as one line on stderr; `str(err)` is that line."""

    exit_code = 1

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ConfigError(ForgeError):
    """Local configuration is wrong (token file, repo name, URL, arguments)."""

    exit_code = 2


class User(TypedDict):
    """The fields of Forgejo's `User` object that hive-forge reads."""

    id: int
    login: str
    full_name: str


class Label(TypedDict):
    """The fields of Forgejo's `Label` object that hive-forge reads."""

    id: int
    name: str
    color: str
    description: str


class Issue(TypedDict):
    """The fields of Forgejo's `Issue` object that hive-forge reads."""

    number: int
    title: str
    body: str
    state: str
    html_url: str
    user: User
    labels: list[Label]
    # Forgejo sends null, not [], when nobody is assigned.
    assignees: list[User] | None
    pull_request: dict[str, object] | None
    created_at: str


class Comment(TypedDict):
    """The fields of Forgejo's `Comment` object that hive-forge reads."""

    id: int
    html_url: str
    user: User
    body: str
    created_at: str


class Branch(TypedDict):
    """The fields of Forgejo's `Branch` object that hive-forge reads."""

    name: str
    commit: dict[str, object]


@dataclass(frozen=True)
class Repo:
    """A repository named `owner/name`."""

    owner: str
    name: str

    def __str__(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def api_path(self) -> str:
        """The `/repos/{owner}/{repo}` prefix of this repository's endpoints."""
        return f"/repos/{quote(self.owner, safe='')}/{quote(self.name, safe='')}"


def parse_repo(text: str, source: str) -> Repo:
    """Parse `owner/name`; `source` names where the text came from for the error message."""
    if not _REPO_RE.match(text):
        raise ConfigError(
            f"{source} must be owner/name (letters, digits, '.', '_', '-'), got {text!r}"
        )
    owner, name = text.split("/")
    return Repo(owner, name)


def token_path(state_dir: str | None) -> Path:
    """Where the forge token lives: `$HYPERHIVE_STATE_DIR/forge-token`, default `/state`."""
    return Path(state_dir or DEFAULT_STATE_DIR) / TOKEN_FILE_NAME


def read_token(path: Path) -> str:
    """Read the token file; a missing, unreadable or empty file is a `ConfigError`."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(
            f"no forge token: {path} does not exist; ask the operator to provision a "
            "Forgejo token for this agent (or set HYPERHIVE_STATE_DIR)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"cannot read forge token file {path}: {reason}") from None
    if not token:
        raise ConfigError(
            f"forge token file {path} is empty; ask the operator to provision a Forgejo token"
        )
    return token


def next_page(link_header: str | None) -> int | None:
    """The page number of the `rel="next"` entry of a Forgejo `Link` header, if any.

    Only the page number is taken: the link's host is Forgejo's ROOT_URL, which behind a
    proxy or inside a container need not be the address this client talks to.
    """
    if not link_header:
        return None
    for url, rel in _LINK_RE.findall(link_header):
        if rel == "next":
            pages = parse_qs(urlsplit(url).query).get("page")
            if pages and pages[0].isdigit():
                return int(pages[0])
    return None


def _total_count(headers: Mapping[str, str]) -> int | None:
    """`X-Total-Count` as a number, or None when absent or not a number."""
    raw = headers.get("X-Total-Count", "").strip()
    return int(raw) if raw.isdigit() else None


def _expect_dict(data: object, what: str) -> dict[str, object]:
    if not isinstance(data, dict):
        raise ForgeError(f"unexpected answer from Forgejo for {what}: not a JSON object")
    return data


def _expect_list(data: object, what: str) -> list[object]:
    if not isinstance(data, list):
        raise ForgeError(f"unexpected answer from Forgejo for {what}: not a JSON list")
    return data


class ForgeClient:
    """One session against one Forgejo instance and one repository.

    `token_source` is only used in messages (the path the token came from), never the token.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        repo: Repo,
        *,
        token_source: str = "the token file",  # noqa: S107  (a description)
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"HIVE_FORGE_URL must be an http(s) URL like {DEFAULT_URL}, got {base_url!r}"
            )
        self.base_url = base_url.rstrip("/")
        if self.base_url.endswith("/api/v1"):
            self.base_url = self.base_url.removesuffix("/api/v1")
        self.repo = repo
        self._token = token
        self._token_source = token_source
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ForgeClient:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            headers={"Authorization": f"token {self._token}", "Accept": "application/json"},
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- issues -------------------------------------------------------------------------

    async def get_issue(self, index: int) -> Issue:
        """GET /repos/{owner}/{repo}/issues/{index} (issues and pull requests alike)."""
        data, _ = await self._request(
            "GET", f"{self.repo.api_path}/issues/{index}", action="read", subject=f"issue #{index}"
        )
        return cast(Issue, _expect_dict(data, f"issue #{index}"))

    async def edit_issue(
        self, index: int, changes: Mapping[str, object], *, action: str, hint: str = ""
    ) -> Issue:
        """PATCH /repos/{owner}/{repo}/issues/{index} with an `EditIssueOption` body."""
        data, _ = await self._request(
            "PATCH",
            f"{self.repo.api_path}/issues/{index}",
            json_body=dict(changes),
            action=action,
            subject=f"issue #{index}",
            hint=hint,
        )
        return cast(Issue, _expect_dict(data, f"issue #{index}"))

    async def list_comments(self, index: int) -> list[Comment]:
        """All comments of an issue, oldest first."""
        items = await self._list_all(
            f"{self.repo.api_path}/issues/{index}/comments", subject=f"issue #{index}"
        )
        return cast(list[Comment], items)

    async def create_comment(self, index: int, body: str) -> Comment:
        """POST /repos/{owner}/{repo}/issues/{index}/comments."""
        data, _ = await self._request(
            "POST",
            f"{self.repo.api_path}/issues/{index}/comments",
            json_body={"body": body},
            action="comment on",
            subject=f"issue #{index}",
        )
        return cast(Comment, _expect_dict(data, "the new comment"))

    # --- labels -------------------------------------------------------------------------

    async def list_repo_labels(self) -> list[Label]:
        """Every label defined in the repository."""
        items = await self._list_all(f"{self.repo.api_path}/labels", subject="labels")
        return cast(list[Label], items)

    async def list_org_labels(self) -> list[Label]:
        """Labels of the owning organization; [] when the owner is a user, not an org."""
        path = f"/orgs/{quote(self.repo.owner, safe='')}/labels"
        try:
            items = await self._list_all(path, subject="organization labels", check_repo=False)
        except ForgeError as exc:
            # 404: the owner is a user. 403: the token lacks the read:organization scope,
            # which an issue-only token may well do; then only repo labels can be named.
            if exc.status in (403, 404):
                return []
            raise
        return cast(list[Label], items)

    async def resolve_labels(self, names: list[str]) -> list[Label]:
        """Map label names to labels (repo labels first, then the org's); unknown → error."""
        known = await self.list_repo_labels()
        found, missing = _match_labels(names, known)
        if missing:
            org_labels = await self.list_org_labels()
            known += org_labels
            found, missing = _match_labels(names, known)
        if missing:
            names_known = sorted({label["name"] for label in known})
            shown = ", ".join(names_known[:30]) or "none"
            if len(names_known) > 30:
                shown += f", … ({len(names_known)} in all)"
            unknown = ", ".join(repr(name) for name in missing)
            noun = "label" if len(missing) == 1 else "labels"
            raise ForgeError(f"unknown {noun} {unknown} in {self.repo} (known labels: {shown})")
        return found

    async def _issue_labels(
        self, method: str, index: int, action: str, label_ids: list[int] | None = None
    ) -> list[Label]:
        data, _ = await self._request(
            method,
            f"{self.repo.api_path}/issues/{index}/labels",
            json_body=None if label_ids is None else {"labels": label_ids},
            action=action,
            subject=f"issue #{index}",
        )
        return cast(list[Label], _expect_list(data, f"labels of issue #{index}"))

    async def list_issue_labels(self, index: int) -> list[Label]:
        """GET /repos/{owner}/{repo}/issues/{index}/labels."""
        return await self._issue_labels("GET", index, "read labels of")

    async def add_labels(self, index: int, label_ids: list[int]) -> list[Label]:
        """POST /repos/{owner}/{repo}/issues/{index}/labels; returns the issue's labels."""
        return await self._issue_labels("POST", index, "add labels to", label_ids)

    async def replace_labels(self, index: int, label_ids: list[int]) -> list[Label]:
        """PUT /repos/{owner}/{repo}/issues/{index}/labels; returns the issue's labels."""
        return await self._issue_labels("PUT", index, "set labels of", label_ids)

    async def remove_label(self, index: int, label_id: int) -> None:
        """DELETE /repos/{owner}/{repo}/issues/{index}/labels/{id}."""
        await self._request(
            "DELETE",
            f"{self.repo.api_path}/issues/{index}/labels/{label_id}",
            action="remove a label from",
            subject=f"issue #{index}",
        )

    async def clear_labels(self, index: int) -> None:
        """DELETE /repos/{owner}/{repo}/issues/{index}/labels."""
        await self._request(
            "DELETE",
            f"{self.repo.api_path}/issues/{index}/labels",
            action="clear labels of",
            subject=f"issue #{index}",
        )

    # --- pull requests and branches -----------------------------------------------------

    async def get_pull(self, index: int) -> dict[str, object]:
        """GET /repos/{owner}/{repo}/pulls/{index}: Forgejo's `PullRequest` object."""
        data, _ = await self._request(
            "GET",
            f"{self.repo.api_path}/pulls/{index}",
            action="read",
            subject=f"pull request #{index}",
        )
        return _expect_dict(data, f"pull request #{index}")

    async def list_branches(self) -> list[Branch]:
        """Every branch of the repository."""
        items = await self._list_all(f"{self.repo.api_path}/branches", subject="branches")
        return cast(list[Branch], items)

    # --- transport ----------------------------------------------------------------------

    async def _list_all(self, path: str, *, subject: str, check_repo: bool = True) -> list[object]:
        """Every item of a list endpoint, whichever paging headers the server sends.

        Asks `page`/`limit` and trusts no single header (docs/hive-forge.md, "Paging"):
        with a `Link` header it follows `rel="next"`; with only `X-Total-Count` (Gitea,
        older Forgejo on label lists) it reads until it has that many items; with neither
        it stops at an empty or short page (shorter than the first, which is the server's
        real page size) or at a page equal to the one before (an endpoint that ignores
        `page`, like issue comments).
        """
        items: list[object] = []
        page = 1
        first_len: int | None = None
        previous: list[object] | None = None
        for _ in range(MAX_PAGES):
            data, headers = await self._request(
                "GET",
                path,
                params={"page": str(page), "limit": str(PAGE_LIMIT)},
                action="list",
                subject=subject,
                check_repo=check_repo,
            )
            chunk = _expect_list(data, subject)
            if chunk and chunk == previous:
                return items  # the server ignores `page`: this is the list again
            items.extend(chunk)
            if first_len is None:
                first_len = len(chunk)
            if headers.get("Link") is not None:
                following = next_page(headers.get("Link"))
                if following is None or following <= page:
                    return items
                page = following
            else:
                total = _total_count(headers)
                if not chunk:
                    return items
                if total is not None and len(items) >= total:
                    return items
                if total is None and len(chunk) < first_len:
                    return items
                page += 1
            previous = chunk
        raise ForgeError(f"Forgejo kept paging {subject} past {MAX_PAGES} pages; giving up")

    async def _request(
        self,
        method: str,
        path: str,
        *,
        action: str,
        subject: str,
        json_body: object = None,
        params: Mapping[str, str] | None = None,
        hint: str = "",
        check_repo: bool = True,
    ) -> tuple[object, Mapping[str, str]]:
        if self._session is None:
            raise RuntimeError("ForgeClient used outside `async with`")
        url = f"{self.base_url}/api/v1{path}"
        try:
            async with self._session.request(
                method, url, json=json_body, params=params
            ) as response:
                raw = await response.read()
                status = response.status
                headers: Mapping[str, str] = response.headers
        except aiohttp.InvalidURL:
            raise ConfigError(
                f"HIVE_FORGE_URL {self.base_url!r} is not a valid URL (expected e.g. {DEFAULT_URL})"
            ) from None
        except aiohttp.ClientConnectionError as exc:
            raise ForgeError(
                f"cannot reach Forgejo at {self.base_url} ({_connection_reason(exc)}); check "
                "HIVE_FORGE_URL and that Forgejo is running"
            ) from None
        except TimeoutError:
            raise ForgeError(
                f"Forgejo at {self.base_url} did not answer within {self._timeout_s:g} s; "
                "try again later or check that Forgejo is healthy"
            ) from None
        except aiohttp.ClientError as exc:
            raise ForgeError(
                f"request to Forgejo at {self.base_url} failed ({type(exc).__name__})"
            ) from None
        logger.debug("%s %s -> %d (%d bytes)", method, path, status, len(raw))
        if status >= 400:
            raise await self._http_error(
                status, raw, action=action, subject=subject, hint=hint, check_repo=check_repo
            )
        if status == 204 or not raw:
            return None, headers
        try:
            return json.loads(raw), headers
        except ValueError:
            raise ForgeError(
                f"{self.base_url} answered {method} {path} with something that is not JSON "
                f"(HTTP {status}); is HIVE_FORGE_URL pointing at Forgejo?"
            ) from None

    async def _http_error(
        self, status: int, raw: bytes, *, action: str, subject: str, hint: str, check_repo: bool
    ) -> ForgeError:
        detail = self._forgejo_message(raw)
        said = f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
        repo = self.repo
        if status == 401:
            return ForgeError(
                f"Forgejo rejected the token from {self._token_source} ({said}); it is wrong, "
                "expired or revoked: ask the operator for a new forge token",
                status=status,
            )
        if status == 403:
            return ForgeError(
                f"permission denied to {action} {subject} in {repo} ({said}); the token's user "
                "needs access to the repository and the token the matching scope (e.g. "
                "write:issue): ask the operator",
                status=status,
            )
        if status == 404:
            if check_repo and not await self._repo_exists():
                return ForgeError(
                    f"repository {repo} not found on {self.base_url} (or the token's user "
                    "cannot see it); check -r/--repo or HIVE_FORGE_REPO",
                    status=status,
                )
            return ForgeError(f"{subject} not found in {repo}", status=status)
        if status in (400, 422):
            return ForgeError(
                f"Forgejo refused to {action} {subject} in {repo} ({said})", status=status
            )
        suffix = f"; {hint}" if hint else ""
        return ForgeError(
            f"Forgejo failed to {action} {subject} in {repo} ({said}){suffix}", status=status
        )

    async def _repo_exists(self) -> bool:
        try:
            await self._request(
                "GET", self.repo.api_path, action="read", subject="repository", check_repo=False
            )
        except ForgeError as exc:
            # Anything but 404 (403, network) says nothing about existence; keep the original
            # 404 wording rather than replacing it with this second failure.
            return exc.status != 404
        return True

    def _forgejo_message(self, raw: bytes) -> str:
        """Forgejo's `{"message": ...}` as one safe line (no newlines, no token, bounded)."""
        try:
            payload = json.loads(raw)
        except ValueError:
            return ""
        message = payload.get("message") if isinstance(payload, dict) else None
        if not isinstance(message, str):
            return ""
        line = " ".join(message.split()).replace(self._token, "***")
        if len(line) > _MESSAGE_MAX:
            line = line[: _MESSAGE_MAX - 1] + "…"
        return line


def _match_labels(names: list[str], known: list[Label]) -> tuple[list[Label], list[str]]:
    """Exact name match first, then a case-insensitive one if it is unambiguous."""
    found: list[Label] = []
    missing: list[str] = []
    for name in names:
        exact = [label for label in known if label["name"] == name]
        loose = [label for label in known if label["name"].casefold() == name.casefold()]
        if exact:
            found.append(exact[0])
        elif len(loose) == 1:
            found.append(loose[0])
        else:
            missing.append(name)
    return found, missing


def _connection_reason(exc: aiohttp.ClientConnectionError) -> str:
    os_error = getattr(exc, "os_error", None)
    # asyncio words refusals as "Connect call failed (...)"; the errno says it plainly.
    if isinstance(os_error, OSError) and os_error.errno and os_error.errno > 0:
        return os.strerror(os_error.errno).lower()
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror.lower()
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    return type(exc).__name__

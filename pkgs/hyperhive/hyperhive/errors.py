"""The error tree. Each error carries the HTTP status an adapter renders it with."""

from __future__ import annotations


class HyperhiveError(Exception):
    """Base of every error a caller is meant to read: the message says what to do."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(HyperhiveError):
    """The request is malformed or names something invalid."""


class InvalidName(InvalidRequest):
    """An agent name that fails the name rule; refused before any path join."""


class NotFound(HyperhiveError):
    """The named thing does not exist."""

    status = 404


class Forbidden(HyperhiveError):
    """The caller's socket or origin may not do this."""

    status = 403


class Conflict(HyperhiveError):
    """The request contradicts current state (e.g. purge of a live agent)."""

    status = 409


class Unavailable(HyperhiveError):
    """A dependency (disk, git, a backend) failed; retrying later may work."""

    status = 503


class InDoubt(Unavailable):
    """The connection to the database broke while a commit was under way: the write may or
    may not have been saved."""


class LimitExceeded(HyperhiveError):
    """A per-identity limit (connections, send rate, stored bytes, open questions) is hit;
    the message names the limit, its setting, and what to do."""

    status = 429

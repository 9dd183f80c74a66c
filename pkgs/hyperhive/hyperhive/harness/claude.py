"""What a claude turn's outcome is, from its ``result`` message (engine.py runs the turn).

Facts about the pinned CLI (2.1.330) this relies on are recorded in docs/turn-loop.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

logger = logging.getLogger(__name__)

JsonObj = dict[str, Any]
Publish = Callable[[str, JsonObj], object]

# After SIGINT claude flushes a result and exits within ~0.2 s; past this we kill it.
CANCEL_GRACE_SECONDS = 10.0
# After SIGTERM to claude and its processes, how long before SIGKILL.
TERM_GRACE_SECONDS = 2.0


class Outcome(StrEnum):
    """How a claude turn ended, as far as the turn loop cares."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"
    NEEDS_LOGIN = "needs_login"
    PROMPT_TOO_LONG = "prompt_too_long"
    CANCELLED = "cancelled"
    # Worth retrying the same message: overloaded, 5xx, connection errors, claude crashed.
    TRANSIENT = "transient"
    # Retrying will not help: a 4xx other than 401/429/too-long, or no result in time.
    FAILED = "failed"


@dataclass
class TurnResult:
    """What a finished claude process left behind."""

    outcome: Outcome
    note: str
    exit_code: int | None
    result: JsonObj | None = None
    # Seconds the API asked us to wait (retry-after, as claude's own retry reported it).
    retry_after: float | None = None


TRANSIENT_ERROR_TYPES = frozenset({"overloaded_error", "api_error", "timeout_error"})


def classify(
    result: JsonObj | None,
    api_errors: Sequence[str],
    exit_code: int | None,
    cancelled: bool,
    *,
    timed_out: bool = False,
) -> tuple[Outcome, str]:
    """Map claude's final ``result`` line (and ``assistant.error`` tags) to an outcome.

    ``is_error`` decides success; the fields and the text only say which error. Observed
    with 2.1.330: 429 → ``error: "rate_limit"``, ``api_error_status: 429``; 401 or no
    credentials → ``error: "authentication_failed"``; an over-long context →
    ``terminal_reason: "prompt_too_long"``; 529/500 → ``api_error_status`` 529/500 with
    ``api_error_type`` ``overloaded_error``/``api_error``; a crash or kill → no result line.
    """
    if cancelled:
        return Outcome.CANCELLED, "turn cancelled by the operator"
    if timed_out:
        return Outcome.FAILED, "no result before the turn deadline: claude was ended"
    if result is None:
        return Outcome.TRANSIENT, f"claude exited with code {exit_code} without a result line"
    text = str(result.get("result", ""))
    if not result.get("is_error"):
        return Outcome.OK, text
    status = result.get("api_error_status")
    status = status if isinstance(status, int) else None
    kind = result.get("api_error_type")
    if result.get("terminal_reason") == "prompt_too_long" or (
        status == 400 and text.lower().startswith("prompt is too long")
    ):
        return Outcome.PROMPT_TOO_LONG, text or "prompt is too long"
    if status == 429 or "rate_limit" in api_errors:
        return Outcome.RATE_LIMITED, text or "rate limited"
    if status == 401 or "authentication_failed" in api_errors:
        return Outcome.NEEDS_LOGIN, text or "not logged in"
    if status is not None and 400 <= status < 500 and status not in (408, 409):
        return Outcome.FAILED, text or f"the API refused the request ({status})"
    if status is not None or kind in TRANSIENT_ERROR_TYPES:
        return Outcome.TRANSIENT, text or f"API error {status}"
    # is_error without an API status: a connection error, max turns, an execution error.
    return Outcome.TRANSIENT, text or f"claude failed (exit code {exit_code})"

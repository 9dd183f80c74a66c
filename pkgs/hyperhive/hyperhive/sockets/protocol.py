"""Reading JSON-lines requests and turning malformed input into clear `err` replies."""

from __future__ import annotations

import asyncio

from pydantic import ValidationError

from hyperhive.wire.requests import REQUEST, Request

MAX_LINE = 1024 * 1024


class TooLong:
    """Marker: the line exceeded MAX_LINE and was discarded."""


TOO_LONG = TooLong()


async def read_line(reader: asyncio.StreamReader) -> bytes | TooLong | None:
    """The next line (without its newline), TOO_LONG, or None at end of stream.

    An over-long line is discarded up to its newline without buffering it whole, so a
    client cannot make the daemon hold more than MAX_LINE of one request.
    """
    discarding = False
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial and not discarding:
                return exc.partial
            return TOO_LONG if discarding and exc.partial else None
        except asyncio.LimitOverrunError as exc:
            await reader.readexactly(exc.consumed)
            discarding = True
            continue
        if discarding:
            return TOO_LONG
        return line[:-1]


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    kind = first["type"]
    loc = [str(part) for part in first["loc"]]
    if kind == "json_invalid":
        return f"request is not valid JSON ({first['msg']})"
    if not loc and kind not in ("union_tag_not_found", "union_tag_invalid"):
        return "request must be a JSON object with a 'cmd' field"
    if kind == "union_tag_not_found":
        return "request has no 'cmd' field"
    if kind == "union_tag_invalid":
        tag = first.get("input", {})
        cmd = tag.get("cmd") if isinstance(tag, dict) else None
        return f"unknown cmd {cmd!r}"
    cmd = loc[0] if loc else "?"
    field = ".".join(loc[1:]) or "?"
    if kind == "missing":
        return f"cmd {cmd!r} is missing field {field!r}"
    if kind == "extra_forbidden":
        return f"cmd {cmd!r} has no field {field!r}"
    return f"cmd {cmd!r}: field {field!r}: {first['msg']}"


def parse_request(line: bytes) -> Request | str:
    """A validated request, or the error message that says what is wrong with it."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"request is not valid UTF-8 (bad byte at offset {exc.start})"
    if not text.strip():
        return "empty request line: send one JSON object per line"
    try:
        return REQUEST.validate_json(text)
    except ValidationError as exc:
        return _describe(exc)

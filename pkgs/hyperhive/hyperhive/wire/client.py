"""An async client for any hyperhive socket: one request line out, one response line in."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from types import TracebackType

from pydantic import BaseModel

from hyperhive.errors import HyperhiveError, Unavailable
from hyperhive.wire.responses import RESPONSE, Err, Response

RESPONSE_LIMIT = 64 * 1024 * 1024


class DaemonError(HyperhiveError):
    """The daemon answered `err`; `message` is its text."""


class SocketClient:
    """A connection to one socket. Requests on one connection are answered in order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(cls, path: Path | str) -> SocketClient:
        """Connect to the socket at `path`, or raise Unavailable saying which socket."""
        try:
            reader, writer = await asyncio.open_unix_connection(str(path), limit=RESPONSE_LIMIT)
        except OSError as exc:
            raise Unavailable(
                f"cannot reach the hyperhive socket {path}: {exc.strerror or exc}"
                " — is hive-c0re running?"
            ) from exc
        return cls(reader, writer)

    async def call_raw(self, line: bytes) -> Response:
        """Send one raw line (must end in a newline) and parse the response."""
        async with self._lock:
            self._writer.write(line)
            await self._writer.drain()
            reply = await self._reader.readline()
        if not reply:
            raise Unavailable("the daemon closed the connection before answering")
        return RESPONSE.validate_json(reply)

    async def call(self, request: BaseModel) -> Response:
        """Send `request`; return the response, raising DaemonError on `err`."""
        response = await self.call_raw(request.model_dump_json().encode() + b"\n")
        if isinstance(response, Err):
            raise DaemonError(response.message)
        return response

    async def close(self) -> None:
        """Close the connection."""
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def __aenter__(self) -> SocketClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

"""Fixtures of the multi-host tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hivetest.pg import PgServer


@pytest.fixture
def own_server() -> Iterator[PgServer]:
    """A PostgreSQL server of the test's own (the test stops and starts it), not the
    process-wide `pg_server` other tests share."""
    server = PgServer().start()
    try:
        yield server
    finally:
        server.stop()

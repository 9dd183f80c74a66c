"""Every broker test runs on both stores: the embedded sqlite file and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import hivetest
import pytest
from hivetest.pg import PgServer
from hyperhive.db.schema import POSTGRES_MIGRATIONS


@pytest.fixture(params=["sqlite", "postgres"], autouse=True)
def store(request: pytest.FixtureRequest) -> Iterator[str]:
    """The store the test's hives use (hivetest.STORE)."""
    server: PgServer | None = None
    if request.param == "postgres":
        server = request.getfixturevalue("pg_server")
        url = server.database()
        hivetest.STORE.update(database_url=url, database_password_file=server.password_file)
    try:
        yield str(request.param)
    finally:
        hivetest.STORE.clear()
    if server is not None:
        # The test's hives really used this database (not a sqlite file beside it).
        with server.admin(url.rsplit("/", 1)[1]) as conn:
            row = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
        assert row is not None
        assert row[0] == len(POSTGRES_MIGRATIONS)

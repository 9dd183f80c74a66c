"""The two engines' migration lists stay in step: same numbers, same names, same order."""

from __future__ import annotations

from hyperhive.db.schema import BROKER_MIGRATIONS, POSTGRES_MIGRATIONS


def test_both_engines_have_the_same_numbered_migrations() -> None:
    sqlite = [(number, name) for number, name, _ in BROKER_MIGRATIONS]
    postgres = [(number, name) for number, name, _ in POSTGRES_MIGRATIONS]
    assert sqlite == postgres
    assert [n for n, _ in sqlite] == list(range(1, len(sqlite) + 1))

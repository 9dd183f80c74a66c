"""Which store the broker uses: the embedded sqlite file, or a hive's PostgreSQL server."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from hyperhive.db.connection import Database, SqliteDatabase
from hyperhive.db.schema import BROKER_MIGRATIONS, POSTGRES_MIGRATIONS
from hyperhive.errors import InvalidRequest
from hyperhive.settings import Settings

PASSWORD_BYTES = 1024


def read_password_file(path: Path) -> str:
    """The password in `path`: its first line. Refused (InvalidRequest, the file's path
    and what to do; never its content) when it is not a regular file, is readable by
    group or others, or is over 1 KiB."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise InvalidRequest(
            f"HYPERHIVE_DATABASE_PASSWORD_FILE {path}: cannot open it ({exc.strerror})"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidRequest(f"HYPERHIVE_DATABASE_PASSWORD_FILE {path} is not a regular file")
        if info.st_mode & 0o077:
            raise InvalidRequest(
                f"HYPERHIVE_DATABASE_PASSWORD_FILE {path} is readable by others (mode"
                f" {stat.S_IMODE(info.st_mode):o}): the password is operator authority;"
                f" chmod 600 {path}"
            )
        data = os.read(fd, PASSWORD_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > PASSWORD_BYTES:
        raise InvalidRequest(f"HYPERHIVE_DATABASE_PASSWORD_FILE {path} is over 1 KiB")
    lines = data.decode(errors="replace").splitlines()
    return lines[0] if lines else ""


def open_broker_db(settings: Settings) -> Database:
    """The broker's store for `settings`: PostgreSQL when HYPERHIVE_DATABASE_URL is set,
    else `<state_dir>/broker.sqlite`. Raises InvalidRequest for a bad URL or password
    file and Unavailable when the server cannot be reached."""
    if settings.database_url is None:
        return SqliteDatabase(settings.broker_db, BROKER_MIGRATIONS)
    from hyperhive.db.postgres import PostgresDatabase, check_url

    try:
        check_url(settings.database_url)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    password = None
    if settings.database_password_file is not None:
        password = read_password_file(settings.database_password_file)
    return PostgresDatabase(
        settings.database_url,
        POSTGRES_MIGRATIONS,
        password=password,
        application_name=f"hive-c0re@{settings.host_name}",
    )

"""Symlink-safe file work inside trees that an agent or the manager can write.

Every function takes a trusted ``root`` (a directory the daemon owns and no container can
write: the state or run dir, or a daemon-only directory made with ``ensure_dir``) and a
``path`` inside it. ``root`` is opened by path; every component of ``path`` below it is
opened relative to its parent's descriptor with ``O_NOFOLLOW`` (``O_DIRECTORY`` for
directories), so a symlink, a fifo or a swapped directory anywhere below ``root`` is
refused (``UnsafePath``) instead of followed. Modes are set with ``fchmod`` on an open
descriptor, never by path; a file is replaced by writing a fresh temporary next to it and
renaming it over (rename replaces a symlink, it does not follow it).

Architecture Invariant: the daemon never opens, chmods, chowns, reads or writes by path
inside an agent- or manager-writable tree; it goes through this module.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from hyperhive.errors import Conflict

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# C0 controls but tab and newline, DEL, C1 controls, and the bidi overrides/isolates.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


class UnsafePath(Conflict):
    """A path in an agent-writable tree is a symlink, not a directory/file, or not ours."""


def _parts(root: Path, path: Path) -> list[str]:
    """The components of `path` below `root` (refuses anything not plainly inside)."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        raise UnsafePath(f"{path} is not inside {root}") from None
    parts = list(rel.parts)
    if any(p in ("", ".", "..") or "/" in p for p in parts):
        raise UnsafePath(f"{path} is not a plain path inside {root}")
    return parts


def _refused(path: Path, exc: OSError) -> UnsafePath:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        why = "is a symlink or not a directory"
    else:
        why = f"cannot be opened ({exc.strerror or exc})"
    return UnsafePath(f"refused: {path} {why}; the daemon does not follow links in agent trees")


def _open_below(root: Path, path: Path, *, create: bool, mode: int, owner: int | None) -> int:
    """A descriptor of the directory `path`, walked from `root` without following links."""
    parts = _parts(root, path)
    fd = os.open(root, _DIR_FLAGS)
    try:
        here = root
        for part in parts:
            here = here / part
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, mode, dir_fd=fd)
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise _refused(here, exc) from exc
            os.close(fd)
            fd = child
            if owner is not None and os.fstat(fd).st_uid != owner:
                raise UnsafePath(
                    f"refused: {here} is owned by uid {os.fstat(fd).st_uid}, not the daemon's"
                    f" uid {owner}; the daemon only uses directories it created"
                )
        return fd
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def opened_dir(
    root: Path, path: Path, *, create: bool = False, owner: int | None = None
) -> Iterator[int]:
    """``with opened_dir(root, path) as fd``: a directory descriptor, closed on exit.

    create: make missing components (mode 0755 before umask). owner: refuse a component
    below `root` whose owner is not this uid. Raises UnsafePath, FileNotFoundError.
    """
    fd = _open_below(root, path, create=create, mode=0o755, owner=owner)
    try:
        yield fd
    finally:
        os.close(fd)


def ensure_dir(
    root: Path, path: Path, *, mode: int | None = None, owner: int | None = None
) -> None:
    """Create `path` under `root` as needed and check it is a real directory.

    mode: the final directory's mode, set with fchmod (only the final one). owner: as in
    opened_dir (default: none checked). Raises UnsafePath if any component is a link.
    """
    with opened_dir(root, path, create=True, owner=owner) as fd:
        if mode is not None and stat.S_IMODE(os.fstat(fd).st_mode) != mode:
            os.fchmod(fd, mode)


def verify_dir(root: Path, path: Path, *, owner: int | None = None) -> None:
    """Check that `path` exists under `root` as a real directory (no link on the way).

    owner defaults to this process's uid: a bind source must be a directory the daemon
    made. Raises UnsafePath (or FileNotFoundError if missing).
    """
    uid = os.geteuid() if owner is None else owner
    with opened_dir(root, path, owner=uid):
        pass


def read_bytes(root: Path, path: Path, limit: int) -> bytes | None:
    """At most `limit` bytes of the regular file `path` (None if it does not exist).

    Raises UnsafePath if it (or a directory above it) is a link, or not a regular file.
    """
    with opened_dir(root, path.parent) as dfd:
        try:
            fd = os.open(path.name, _READ_FLAGS, dir_fd=dfd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _refused(path, exc) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePath(f"refused: {path} is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        return handle.read(limit)


def is_regular_file(root: Path, path: Path) -> bool:
    """Whether `path` is a regular file, itself no link and below no link (lstat-based)."""
    try:
        with opened_dir(root, path.parent) as dfd:
            st = os.stat(path.name, dir_fd=dfd, follow_symlinks=False)
    except (OSError, UnsafePath):
        return False
    return stat.S_ISREG(st.st_mode)


def open_append(root: Path, path: Path, mode: int = 0o600) -> int:
    """A write descriptor appending to the regular file `path` (created with `mode`)."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    with opened_dir(root, path.parent) as dfd:
        try:
            fd = os.open(path.name, flags, mode, dir_fd=dfd)
        except OSError as exc:
            raise _refused(path, exc) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePath(f"refused: {path} is not a regular file")
    os.set_blocking(fd, True)
    return fd


def write_atomic(root: Path, path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data`: a fresh temporary (O_EXCL, fchmod) renamed over it."""
    with opened_dir(root, path.parent) as dfd:
        tmp = f".{path.name}.{secrets.token_hex(6)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600, dir_fd=dfd)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fchmod(handle.fileno(), mode)
                os.fsync(handle.fileno())  # a crash never leaves an empty file behind
            os.rename(tmp, path.name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise


def unlink(root: Path, path: Path) -> bool:
    """Remove the entry `path` (a link itself, never its target); True if it existed."""
    try:
        with opened_dir(root, path.parent) as dfd:
            os.unlink(path.name, dir_fd=dfd)
    except FileNotFoundError:
        return False
    return True


def bounded(text: str, limit: int = 2000) -> str:
    """`text` fit for an error message or a log view: no control characters, capped.

    Tabs and newlines are kept; other controls (terminal escapes, NUL, bidi overrides)
    become U+FFFD; more than `limit` characters keep the end, marked with "...".
    """
    clean = _CONTROL.sub("\ufffd", text)
    if len(clean) > limit:
        clean = "..." + clean[-(limit - 3) :]
    return clean

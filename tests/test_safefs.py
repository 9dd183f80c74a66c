"""safefs: the primitives behind every file operation in an agent-writable tree."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hyperhive import safefs
from hyperhive.safefs import UnsafePath


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """(trusted root, a host file outside it with mode 04755)."""
    root = tmp_path / "root"
    root.mkdir()
    target = tmp_path / "host-file"
    target.write_text("host\n")
    target.chmod(0o4755)
    return root, target


def test_ensure_dir_refuses_a_link_anywhere_below_the_root(tree: tuple[Path, Path]) -> None:
    root, target = tree
    outside = target.parent / "outside-dir"
    outside.mkdir()
    outside.chmod(0o755)
    (root / "agents").mkdir()
    (root / "agents" / "a").symlink_to(outside)
    with pytest.raises(UnsafePath, match="symlink"):
        safefs.ensure_dir(root, root / "agents" / "a" / "claude", mode=0o700)
    assert list(outside.iterdir()) == []
    assert stat.S_IMODE(outside.stat().st_mode) == 0o755
    with pytest.raises(UnsafePath):
        safefs.ensure_dir(root, root / ".." / "x")
    with pytest.raises(UnsafePath):
        safefs.ensure_dir(root, target.parent)


def test_ensure_dir_sets_the_mode_with_fchmod_and_verify_checks_the_owner(
    tree: tuple[Path, Path],
) -> None:
    root, _ = tree
    made = root / "a" / "b"
    safefs.ensure_dir(root, made, mode=0o700)
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    safefs.verify_dir(root, made)
    os.chown(made, 4242, 4242)
    with pytest.raises(UnsafePath, match="owned by uid 4242"):
        safefs.verify_dir(root, made)


def test_write_atomic_replaces_a_link_and_never_writes_its_target(
    tree: tuple[Path, Path],
) -> None:
    root, target = tree
    (root / "f").symlink_to(target)
    safefs.write_atomic(root, root / "f", b"mine\n", 0o600)
    assert target.read_text() == "host\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o4755
    assert not (root / "f").is_symlink()
    assert (root / "f").read_text() == "mine\n"
    assert stat.S_IMODE((root / "f").stat().st_mode) == 0o600
    assert sorted(p.name for p in root.iterdir()) == ["f"]  # no temporary left


def test_reads_and_appends_refuse_links_fifos_and_directories(tree: tuple[Path, Path]) -> None:
    root, target = tree
    (root / "link").symlink_to(target)
    os.mkfifo(root / "fifo")
    (root / "dir").mkdir()
    for name in ("link", "fifo", "dir"):
        with pytest.raises(UnsafePath):
            safefs.read_bytes(root, root / name, 100)
        assert not safefs.is_regular_file(root, root / name)
    with pytest.raises(UnsafePath):
        safefs.open_append(root, root / "link")
    with pytest.raises(UnsafePath):
        safefs.open_append(root, root / "fifo")  # O_NONBLOCK: refused, not hung
    assert safefs.read_bytes(root, root / "missing", 10) is None
    (root / "plain").write_bytes(b"x" * 100)
    assert safefs.read_bytes(root, root / "plain", 10) == b"x" * 10
    assert target.read_text() == "host\n"


def test_unlink_removes_the_link_not_its_target(tree: tuple[Path, Path]) -> None:
    root, target = tree
    (root / "link").symlink_to(target)
    assert safefs.unlink(root, root / "link")
    assert not safefs.unlink(root, root / "link")
    assert target.read_text() == "host\n"


def test_bounded_strips_controls_and_caps() -> None:
    assert safefs.bounded("a\x1b[2Jb\tc\nd\u202ee\x00") == "a\ufffd[2Jb\tc\nd\ufffde\ufffd"
    capped = safefs.bounded("x" * 10 + "END", 8)
    assert len(capped) == 8
    assert capped.startswith("...")
    assert capped.endswith("END")

"""Files written whole or not at all.

A journal copy or an export is written to a hidden partial file beside its destination,
fsync'd, and renamed over the destination only when complete; then the folder is fsync'd,
so the rename itself survives a power cut. On any failure the partial file is removed: a
pulled stick or a full disk leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

PARTIAL_SUFFIX = ".partial"


def partial_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}{PARTIAL_SUFFIX}")


@contextlib.contextmanager
def replacing(dest: Path) -> Iterator[Path]:
    """The path to write; it becomes ``dest`` when the block ends without an exception
    (``dest`` must be replaceable: ``check_replaceable``)."""
    check_replaceable(dest)
    partial = partial_path(dest)
    remove(partial)  # a leftover of an attempt cut off earlier
    try:
        yield partial
        _fsync(partial, os.O_RDONLY)
        os.replace(partial, dest)
        _fsync(dest.parent, os.O_RDONLY | os.O_DIRECTORY)
    except BaseException:
        remove(partial)
        raise


def check_replaceable(dest: Path) -> None:
    """An OSError when ``dest`` is there and is not a regular file (/dev/null, a folder, a
    pipe): a rename onto it would put a file in its place, as root even in /dev."""
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISREG(dest.stat().st_mode):
            raise OSError(errno.EEXIST, "not a regular file, and never replaced by one",
                          str(dest))


def remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

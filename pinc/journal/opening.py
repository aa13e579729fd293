"""Opening the journal file: connections, the lock beside it, and start-up errors in words.

Everything here runs in a worker thread (it touches the disk). A file pinc cannot use
stops it at start with a :class:`JournalError` whose message names the file and what to
do, rather than a traceback.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Final

SQLITE_MAGIC: Final = b"SQLite format 3\x00"


class JournalError(Exception):
    """The journal cannot be opened; the message names the file and what to do."""


def connect(path: Path, *, synchronous: str, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
        )
    else:
        conn = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=5.0
        )
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute(f"PRAGMA synchronous = {synchronous}")  # per connection, not persisted
    return conn


def _error_name(exc: sqlite3.Error) -> str:
    return str(getattr(exc, "sqlite_errorname", "") or "")


def describe_error(path: Path, exc: BaseException) -> str:
    """A start-up failure in words an administrator can act on."""
    text = str(exc)
    name = _error_name(exc) if isinstance(exc, sqlite3.Error) else ""
    if isinstance(exc, sqlite3.DatabaseError) and (
        name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "not a database" in text
    ):
        return (
            f"journal {path} is not a SQLite database (or is damaged): move it away or set "
            "journal.path to another file, and pinc will create a new journal"
        )
    if (
        name.startswith("SQLITE_READONLY")
        or "readonly" in text
        or isinstance(exc, PermissionError)
        or getattr(exc, "errno", None) in (errno.EPERM, errno.EACCES, errno.EROFS)
    ):
        return (
            f"journal {path} is read-only for pinc ({text}): give the user running pinc write "
            "access to the file and its directory, or set journal.path to a writable place"
        )
    if (
        name == "SQLITE_FULL"
        or "disk is full" in text
        or getattr(exc, "errno", None) == errno.ENOSPC
    ):
        try:
            free = shutil.disk_usage(path.parent).free // (1024 * 1024)
            where = f" ({free} MB free on its file system)"
        except OSError:
            where = ""
        return (
            f"journal {path}: the disk is full{where}: free some space or move journal.path "
            "to a larger file system, then start pinc again"
        )
    if name == "SQLITE_BUSY" or "locked" in text:
        return (
            f"journal {path} is locked by another program: stop whatever holds it open for "
            "writing (another pinc, a sqlite3 shell) and start pinc again"
        )
    return f"journal {path} cannot be opened: {text}"


def lock_path(path: Path) -> Path:
    return Path(f"{path}.lock")


def holder_of(path: Path) -> int | None:
    """The pid of the pinc that holds the journal's lock, or None when nobody does.

    ``pinc outbox`` asks this to decide whether to go through the running service (its
    web port) or to write the file itself: the lock is an flock, released by the kernel
    when its holder dies, so a stale lock file from a killed pinc does not count.
    """
    lock = lock_path(path)
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def open_files(path: Path) -> int:
    """Directory (0700) and file (0600), the lock beside it (returned, held), and a quick
    look inside. Raises JournalError."""
    directory = path.parent
    if not directory.exists():
        try:
            directory.mkdir(parents=True, mode=0o700)
        except PermissionError:
            raise JournalError(
                f"journal {path}: cannot create the directory {directory} (permission "
                "denied): create it for the user running pinc, or set journal.path"
            ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise JournalError(
            f"journal {path}: the directory {directory} is read-only for pinc (SQLite "
            "writes its -wal file there): give pinc write access or set journal.path"
        )
    lock = lock_path(path)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise JournalError(
            f"journal {path} is in use by another pinc (pid {holder}, lock {lock}): stop "
            "that pinc first, or give this one its own journal.path"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _check_file(path)
    except BaseException:
        unlock(fd)
        raise
    return fd


def _check_file(path: Path) -> None:
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    elif not path.is_file():
        raise JournalError(f"journal {path} is not a regular file: set journal.path")
    else:
        with path.open("rb") as f:
            head = f.read(16)
        if head and head != SQLITE_MAGIC:
            raise JournalError(
                f"journal {path} is not a SQLite database (it starts with {head[:8]!r}): "
                "move it away or set journal.path to another file, and pinc will create "
                "a new journal"
            )
        if not os.access(path, os.W_OK):
            raise JournalError(
                f"journal {path} is read-only for pinc: give the user running pinc write "
                "access (chmod 600, owned by that user), or set journal.path"
            )


def unlock(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)

"""Work folders owned by a live process, and the sweep that removes every other one.

A fine-tune copies a server's MIDI into a work folder. The engine that made it removes it
when the run ends; an engine that dies (kill -9, a power cut) cannot, and the server's music
would stay on disk. So each folder has an owner: the process holding an exclusive flock on
`<folder>.lock` beside it, which the kernel lets go of when that process dies, however it
dies. `sweep` removes the folders whose lock nobody holds: a dead engine's, never those of
another live engine sharing the data dir (the old one during a restart overlap).

The lock file is made and locked before its folder and removed after it, so a folder
without one was never live (or comes from a version without locks): the sweep removes it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"


def lock_path(folder: Path) -> Path:
    return folder.with_name(folder.name + LOCK_SUFFIX)


def _lock(path: Path, *, create: bool) -> int | None:
    """A descriptor holding an exclusive flock on `path`, or None if another process holds
    it (or, without `create`, if the file is gone)."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        # A sweeper may have removed the file between our open and our lock: a lock on a
        # removed file guards nothing, so take the one now at that path.
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
        if not create:
            return None


class OwnedDir:
    """A folder this process owns until `remove` (or until it dies)."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self._lock_fd: int | None = lock_fd

    @classmethod
    def create(cls, path: Path) -> OwnedDir:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _lock(lock_path(path), create=True)
        if fd is None:
            raise FileExistsError(f"{path} is owned by another process")
        try:
            path.mkdir()
        except BaseException:
            _release(lock_path(path), fd)
            raise
        return cls(path, fd)

    def remove(self) -> None:
        """Remove the folder, then give it up (idempotent)."""
        if self._lock_fd is None:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        _release(lock_path(self.path), self._lock_fd)
        self._lock_fd = None


def _release(lock: Path, fd: int) -> None:
    lock.unlink(missing_ok=True)  # while still locked: nobody can take a lock on a stale file
    os.close(fd)


def sweep(parent: Path) -> list[Path]:
    """Remove the folders in `parent` that no live process owns; returns them."""
    if not parent.is_dir():
        return []
    removed = []
    for entry in sorted(parent.iterdir()):
        if entry.name.endswith(LOCK_SUFFIX):
            folder = entry.with_name(entry.name.removesuffix(LOCK_SUFFIX))
            fd = _lock(entry, create=False)
            if fd is None:
                continue  # a live owner (or already gone)
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
            _release(entry, fd)
        elif entry.is_dir() and not lock_path(entry).exists():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed

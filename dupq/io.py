"""File helpers shared by every module that writes: atomic saves and checksums (tables: :mod:`dupq.tables`).

Saves go to a temporary sibling and are renamed into place, so a crash or a kill in the middle of a
save never leaves a half-written file where a good one used to be (``os.replace`` is atomic on POSIX).

Directories shared between processes (a Matcher store that ``dupq serve`` holds while ``dupq index
add`` writes to it) are guarded by :func:`store_lock`: an ``flock`` on ``<store>.lock`` beside the
directory, exclusive for a save or a recovery, shared for a load. Locks held by a process that dies
are released by the kernel, so a ``kill -9`` never leaves a store locked.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dupq.errors import StoreError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it over ``path`` atomically.

    The temporary file lives in the same directory so the final ``os.replace`` never crosses a
    file-system boundary (which would make it a non-atomic copy).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; a saved result should get the permissions any new file gets.
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@functools.cache
def _umask() -> int:
    """The process umask, read once: reading it means setting it, which would briefly give files that
    other threads (a serving Matcher) create meanwhile no umask at all."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


#: Seconds a save or a load waits for another process's lock on the same store before giving up.
LOCK_TIMEOUT = float(os.environ.get("DUPQ_LOCK_TIMEOUT", "120") or 120)
_held = threading.local()  # per thread: lock path -> (mode, depth) of the flocks this thread holds


def lock_path(path: str | Path) -> Path:
    """The lock file that guards the directory ``path``: ``<path>.lock`` beside it (not inside it,
    because a save replaces the directory as a whole)."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def store_lock(path: str | Path, *, exclusive: bool = True, timeout: float | None = None) -> Iterator[None]:
    """Hold an ``flock`` on :func:`lock_path` of ``path``: exclusive (saves, recovery) or shared (loads).

    Works between processes and between threads of one process (each call opens its own file
    description, and flocks on different descriptions conflict). Re-entrant within a thread: a thread
    that holds the lock exclusively may enter it again in either mode. Waits up to ``timeout`` seconds
    (default :data:`LOCK_TIMEOUT`, ``$DUPQ_LOCK_TIMEOUT``), then raises :class:`StoreError`. A shared
    lock on a store in a read-only place, where no lock file can be created, is skipped (nothing
    there can be written either).
    """
    import fcntl

    lp = lock_path(path)
    key = str(lp.resolve())
    held: dict[str, tuple[bool, int]] = _held.__dict__.setdefault("locks", {})
    if key in held and (held[key][0] or not exclusive):
        mode, depth = held[key]
        held[key] = (mode, depth + 1)
        try:
            yield
        finally:
            held[key] = (mode, held[key][1] - 1)
        return
    if key in held:
        raise StoreError(f"{path}: cannot take the store lock exclusively while this thread reads it")
    fd = _open_lock_file(lp, exclusive)
    if fd is None:  # a read-only location without a lock file: nobody can be writing there
        yield
        return
    # Writer preference: flock grants a shared lock while a writer waits, so a steady stream of
    # loads could starve a save for ever. A writer first takes the *gate* exclusively, which stops new
    # readers at the gate, then waits for the readers inside to leave; readers pass the gate (shared,
    # for an instant) on their way in.
    gate = _open_lock_file(lp.with_name(f".{lp.name}-gate"), exclusive)
    limit = LOCK_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + limit
    try:
        op = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        if gate is not None:
            _flock(gate, op, deadline, path, lp, limit)
        try:
            _flock(fd, op, deadline, path, lp, limit)
        finally:
            if gate is not None:
                fcntl.flock(gate, fcntl.LOCK_UN)
                os.close(gate)
                gate = None
        held[key] = (exclusive, 1)
        try:
            yield
        finally:
            del held[key]
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        if gate is not None:
            os.close(gate)
        os.close(fd)


def _flock(fd: int, op: int, deadline: float, path: str | Path, lp: Path, limit: float) -> None:
    """``flock(fd, op)``, polling until ``deadline`` (then :class:`StoreError`)."""
    import fcntl

    delay = 0.002
    while True:
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"{path}: locked by another process or thread for over {limit:g} s ({lp}); "
                    "is a save stuck?"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def _open_lock_file(lp: Path, exclusive: bool) -> int | None:
    try:
        lp.parent.mkdir(parents=True, exist_ok=True)
        return os.open(lp, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        if exclusive:
            raise StoreError(f"{lp}: cannot create the store's lock file: {exc.strerror}") from exc
    try:
        return os.open(lp, os.O_RDONLY)
    except OSError:
        return None


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory; on success it replaces ``path`` as a whole.

    Used for multi-file stores (index + texts + manifest): readers see either the old complete
    directory or the new complete one. The old one is moved aside first and removed only after the
    new one is in place, so a kill at any instant leaves a loadable directory at ``path`` or at
    ``path.old`` (which :func:`recover_dir` puts back).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The whole save holds the store's exclusive lock: another process's load never reads a mix of
    # two saves, and two writers never interleave their renames (which lost one of them).
    with store_lock(path, exclusive=True):
        _recover_locked(path)  # a save killed between its renames left the previous store as .old
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())
        try:
            yield tmp
            _fsync_tree(tmp)
            old = path.with_name(path.name + ".old")
            if old.exists():
                shutil.rmtree(old)
            if path.exists():
                os.replace(path, old)
            _between_renames()
            os.replace(tmp, path)
            if old.exists():
                shutil.rmtree(old)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def _between_renames() -> None:
    """Testing seam: runs while a save has moved the old directory aside and not yet put the new one in."""


def recover_dir(path: str | Path) -> Path:
    """If a save was killed between its two renames, put the previous directory back.

    Looks first without the lock (the common case: nothing to do); only a store that needs recovery
    takes the exclusive lock and looks again — a save in progress holds it, so its own rename is
    never mistaken for a killed one.
    """
    path = Path(path)
    if not path.exists() and path.with_name(path.name + ".old").exists():
        with store_lock(path, exclusive=True):
            _recover_locked(path)
    return path


def _recover_locked(path: Path) -> None:
    old = path.with_name(path.name + ".old")
    if not path.exists() and old.exists():
        os.replace(old, path)


def _fsync_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            with open(p, "rb+") as fh:
                os.fsync(fh.fileno())


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed (used for data fingerprints in model metadata)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()

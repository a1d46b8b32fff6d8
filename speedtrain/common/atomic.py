"""Write files so that a reader never sees a half-written one, and so that no result is lost.

Results, baselines and reports are written to a temporary file in the same folder, flushed
to disk and renamed over the target: ``os.replace`` is atomic on POSIX and Windows, so an
interrupted run (an error, Ctrl-C, a kill between the write and the rename) leaves either the
old file or the new one, never a torn mix, and the temporary file is removed.

``check_writable`` refuses an output path before any work is done, and
``write_with_fallback`` saves a result somewhere else (named in one line) when the write
still fails at the end: a finished training run is never thrown away for its output path.

``file_lock`` serialises a load-modify-save of a shared file (the baselines store) between
processes: without it, two suites that read the file before either writes would each write
back their own copy and one update would be silently lost.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import LockTimeoutError, OutputError


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            # mkstemp makes the file private (0600); results and baselines are shared files.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:  # KeyboardInterrupt and SystemExit too: no temporary left behind
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Serialise first, then write: a value json cannot encode leaves the old file intact."""
    write_text_atomic(path, json_text(obj))


def json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"


def check_writable(path: str | os.PathLike[str], folder: bool = False) -> None:
    """Raise OutputError unless ``path`` (a file, or a folder if ``folder``) can be written.

    Probes by creating and removing a file in the nearest existing folder on the way, which
    also catches a read-only file system and works for root, whom permission bits never stop.
    Missing folders are not created here: the write does that, only once there is a result.
    """
    target = existing = Path(path).expanduser()
    try:
        if target.is_dir() and not folder:
            raise OutputError(f"cannot write {path}: it is a folder; give a file path")
        if target.exists() and not target.is_dir() and folder:
            raise OutputError(f"cannot write into {path}: it is a file; give a folder path")
        existing = target if folder else target.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise OutputError(f"cannot write {path}: {existing} is a file, not a folder")
    except OSError as e:  # a folder on the way that cannot even be looked at
        raise OutputError(f"cannot write {path}: {e.strerror or e} ({e.filename or existing})") from e
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise OutputError(f"cannot write {path}: cannot create files in {existing} ({e.strerror or e})") from e


def write_with_fallback(path: str | os.PathLike[str], write: Callable[[Path], None], what: str) -> None:
    """``write(path)``; if that fails, ``write`` a fallback file and raise OutputError naming it.

    The fallback goes to the temporary folder, else the current folder, else the home folder,
    under a name that keeps the original one, so the result is never lost.
    """
    target = Path(path)
    try:
        write(target)
        return
    except OSError as e:
        reason = f"{e.strerror or e}"
    stamp = f"speedtrain-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{target.name}"
    tried = []
    for folder in (Path(tempfile.gettempdir()), Path.cwd(), Path.home()):
        fallback = folder / stamp
        try:
            write(fallback)
        except OSError:
            tried.append(str(folder))
            continue
        raise OutputError(f"cannot write {what} to {path} ({reason}); it was saved to {fallback} instead")
    raise OutputError(f"cannot write {what} to {path} ({reason}), nor to a fallback in {', '.join(tried)}")


def _try_lock(fd: int) -> bool:
    """Take an exclusive lock on ``fd`` without blocking; False if another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def file_lock(path: str | os.PathLike[str], timeout_s: float = 60.0,
              poll_s: float = 0.05) -> Iterator[None]:
    """Hold an exclusive inter-process lock on ``path`` for the ``with`` block.

    The lock is taken on a ``<path>.lock`` sidecar (the file itself is replaced by atomic
    writes, so a lock on it would be on an inode that no longer has the name). The sidecar is
    left in place: deleting it would let a waiter lock an unlinked file while a newcomer locks
    a fresh one. The operating system releases the lock when its holder exits, however it
    exits, so a stale sidecar never blocks anyone. The lock is not re-entrant: do not nest two
    locks on the same path in one process.
    """
    lock_path = Path(f"{os.fspath(path)}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + timeout_s
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                raise LockTimeoutError(
                    f"{path} is locked by another process (waited {timeout_s:g} s on "
                    f"{lock_path}); wait for the other run to finish, then retry")
            time.sleep(poll_s)
        yield  # closing the descriptor below releases the lock
    finally:
        os.close(fd)

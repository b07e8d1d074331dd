"""Files of the prediction log: layout, segment files, and the fsync discipline.

Layout under a workspace folder::

    logs/<kind>/segments/<segment-id>.open    being written by a live writer (flock held)
    logs/<kind>/segments/<segment-id>.seg     closed: complete, waiting for compaction
    logs/<kind>/endpoint=<E>/date=<YYYY-MM-DD>/part-<segment-id>.parquet
    logs/<kind>/.compact.lock                 held by a compaction or a rewrite
    logs/<kind>/.seal-request                 segment ids a rewrite asks their writers to seal

A segment id is ``<UTC start>-p<pid>-<random>-<sequence>``, unique across processes and
hosts, so every worker process writes files of its own and no lock is shared between
writers. The writer holds an exclusive ``flock`` on its ``.open`` file for as long as it
writes; an ``.open`` file nobody holds a lock on belongs to a process that died, and
compaction adopts it. A writer seals its segment early when a rewrite lists its id in
``.seal-request`` (it looks about once a second, see ``RecordLog``). POSIX only
(``fcntl``); use a local file system (flock over NFS is not reliable).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, unquote

from setpoint.errors import StoreError

OPEN_SUFFIX = ".open"
SEALED_SUFFIX = ".seg"
PART_PREFIX = "part-"
PART_SUFFIX = ".parquet"
COMPACT_LOCK = ".compact.lock"
SEAL_REQUEST = ".seal-request"


def kind_dir(root: Path, kind: str) -> Path:
    return root / "logs" / kind


def segments_dir(root: Path, kind: str) -> Path:
    return kind_dir(root, kind) / "segments"


def endpoint_folder(endpoint: str) -> str:
    """The name of an endpoint's folder of parts: ``endpoint=<quoted name>``."""
    return f"endpoint={quote(endpoint, safe='')}"


def partition_dir(root: Path, kind: str, endpoint: str, date: str) -> Path:
    return kind_dir(root, kind) / endpoint_folder(endpoint) / f"date={date}"


def endpoint_of(directory: Path) -> str:
    return unquote(directory.name.removeprefix("endpoint="))


def part_path(directory: Path, segment_id: str) -> Path:
    return directory / f"{PART_PREFIX}{segment_id}{PART_SUFFIX}"


def requested_seals(kind_folder: Path) -> frozenset[str]:
    """The segment ids a rewrite asked their writers to seal (none when it cannot be read)."""
    try:
        return frozenset((kind_folder / SEAL_REQUEST).read_text().split())
    except (OSError, UnicodeDecodeError):
        return frozenset()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing); waits for it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def compaction_lock(root: Path, kind: str) -> contextlib.AbstractContextManager[None]:
    """Hold the kind's compaction lock: no compaction, rewrite or shipping of its local
    folder runs meanwhile."""
    return file_lock(kind_dir(root, kind) / COMPACT_LOCK)


def new_segment_id(sequence: int, token: str) -> str:
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{started}-p{os.getpid()}-{token}-{sequence:06d}"


# ---------------------------------------------------------------------------- fsync


def fsync_fd(fd: int) -> None:
    """Make the file's written data durable (F_FULLFSYNC on macOS, where fsync is not)."""
    if sys.platform == "darwin":
        fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
    else:
        os.fdatasync(fd)


def fsync_dir(directory: Path) -> None:
    """Make the directory's entries (created, renamed, deleted files) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs_durably(directory: Path) -> None:
    """``mkdir -p`` that also fsyncs the parent of every folder it creates."""
    missing: list[Path] = []
    while not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            continue  # another process made it; it fsyncs the parent
        fsync_dir(folder.parent)


def write_durably(path: Path, write: Callable[[Path], None]) -> None:
    """Write a file through ``write(temp_path)``, fsync it, rename it into place, fsync the dir.

    Readers see the old file or the whole new one, before and after a crash.
    """
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write(temp)
        fd = os.open(temp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def io_error(action: str, path: Path, exc: OSError) -> StoreError:
    """A StoreError that names the path and what to do about it."""
    if exc.errno == errno.ENOSPC:
        fix = "free disk space on that volume"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "make the folder writable by the server's user"
    else:
        fix = "check the disk and the folder; the server log has the cause"
    return StoreError(
        f"prediction log: cannot {action} {path}: {exc.strerror or exc}; {fix}",
        details={"path": str(path), "errno": exc.errno},
    )


# ---------------------------------------------------------------------------- segments


class SegmentFile:
    """One segment being written: an exclusively locked ``.open`` file, append-only."""

    def __init__(self, path: Path, fd: int, sequence: int) -> None:
        self.path = path
        self.fd = fd
        self.sequence = sequence  # the writer's next segment must take a higher one
        self.size = 0
        self.synced = 0  # bytes made durable by the last successful sync

    @classmethod
    def create(cls, directory: Path, sequence: int, token: str) -> SegmentFile:
        """A new segment, its directory entry fsynced so the file survives a power loss.

        Its sequence may be above ``sequence`` (a name taken, or a segment compaction
        took from under us): the writer goes on from ``segment.sequence``, since a name
        used again within the second would give a second segment the id of one already
        compacted, and its part would replace that one's.
        """
        while True:
            path = directory / (new_segment_id(sequence, token) + OPEN_SUFFIX)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
            try:
                fd = os.open(path, flags, 0o644)
            except FileExistsError:
                sequence += 1
                continue
            fcntl.flock(fd, fcntl.LOCK_EX)
            # Compaction adopts unlocked .open files; if it took this one between the
            # open and the lock, it is now deleted: start over with another name.
            if os.fstat(fd).st_nlink == 0:
                os.close(fd)
                sequence += 1
                continue
            try:
                fsync_dir(directory)
            except BaseException:
                # Empty and never acknowledged: leave no file behind for each attempt.
                with contextlib.suppress(OSError):
                    path.unlink()
                os.close(fd)
                raise
            return cls(path, fd, sequence)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
            self.size += written

    def sync(self) -> None:
        fsync_fd(self.fd)
        self.synced = self.size

    def rewind(self) -> None:
        """Cut the file back to what the last sync made durable, and sync that.

        After a failed write or fsync the tail is unknown (a partial write, pages the
        kernel dropped); cut off, the segment holds exactly the acknowledged records
        again and can take the next ones, so a failing disk does not leave a new file
        per attempt. Raises OSError when even that fails (then drop the segment).
        """
        os.ftruncate(self.fd, self.synced)
        fsync_fd(self.fd)
        self.size = self.synced

    def seal(self) -> None:
        """Rename to ``.seg`` (closed, ready for compaction) and release the file.

        Everything written was fsynced before; if the rename is lost in a crash, the
        file stays ``.open`` with no lock on it, which compaction treats the same.
        """
        sealed = self.path.with_suffix(SEALED_SUFFIX)
        try:
            os.rename(self.path, sealed)
            fsync_dir(self.path.parent)
        finally:
            self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def try_lock(path: Path) -> int | None:
    """An fd holding the exclusive lock of an ``.open`` file, or None while a writer lives."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def segment_id(path: Path) -> str:
    return path.name.rsplit(".", 1)[0]


def read_segment(path: Path) -> bytes | None:
    """The bytes of a segment, following a rename from ``.open`` to ``.seg``; None if gone."""
    for candidate in (path, path.with_suffix(SEALED_SUFFIX)):
        try:
            return candidate.read_bytes()
        except FileNotFoundError:
            continue
    return None

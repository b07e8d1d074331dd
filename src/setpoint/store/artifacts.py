"""Content-addressed artifact storage.

A file is stored under the sha256 of its bytes (``sha256/ab/abcdef…``), through
fsspec so that the same code writes to a local folder or an object-store URI. Content
is never rewritten in place: storing the same bytes twice keeps one file. Every read
checks the bytes against their address, so a damaged or tampered file is refused
with :class:`ArtifactCorruptedError` and never turns into a wrong model.

A large object (a dataset written as it streams) is written to a *staging* file
first (``staging()``, in the store's own folder when it is local so that the final
rename is atomic) and moved into place by its hash with ``put_file``: the bytes are
hashed from the file in 1 MiB pieces, never held whole.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem

from setpoint.errors import ArtifactCorruptedError, ConfigError


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArtifactStore:
    """Bytes in, a sha256 address out; the address back, the same bytes or an error."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        try:
            self._fs, self._root = fsspec.core.url_to_fs(uri)
        except (ValueError, ImportError) as exc:
            raise ConfigError(f"cannot open artifact store {uri!r}: {exc}") from None
        self._local = isinstance(self._fs, LocalFileSystem)

    @property
    def is_local(self) -> bool:
        """Whether the store is a folder of this machine (not shared with others)."""
        return self._local

    def path(self, digest: str) -> str:
        return f"{self._root.rstrip('/')}/sha256/{digest[:2]}/{digest}"

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its sha256; durable when this returns."""
        digest = sha256(data)
        target = self.path(digest)
        if self._fs.exists(target) and self._fs.size(target) == len(data):
            try:
                self.get(digest)
                return digest
            except ArtifactCorruptedError:
                pass  # damaged: storing the object again repairs it
        if self._local:
            _write_durably(Path(target), data)
        else:
            self._fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            self._fs.pipe_file(target, data)
        return digest

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh local file to write a large object into, removed on the way out
        unless ``put_file`` has moved it into the store."""
        if self._local:
            folder = Path(self._root) / "staging"
            folder.mkdir(parents=True, exist_ok=True)
        else:
            folder = Path(tempfile.gettempdir())
        fd, name = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
        os.close(fd)
        path = Path(name)
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    def put_file(self, path: Path) -> str:
        """Store the file at ``path`` (from ``staging()``) under its sha256, which is
        returned; the file is moved, not copied, and durable when this returns."""
        digest = file_sha256(path)
        target = self.path(digest)
        same_size = self._fs.exists(target) and self._fs.size(target) == path.stat().st_size
        if same_size and self._verified(digest):  # else damaged: storing it again repairs it
            path.unlink()
            return digest
        if self._local:
            with open(path, "rb") as f:
                os.fsync(f.fileno())
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            _fsync_dir(Path(target).parent)
        else:
            self._fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            self._fs.put_file(str(path), target)
            path.unlink()
        return digest

    def _verified(self, digest: str) -> bool:
        """Whether the object stored under ``digest`` is intact, read in pieces."""
        sha = hashlib.sha256()
        with self._fs.open(self.path(digest), "rb") as f:
            while piece := f.read(_PIECE):
                sha.update(piece)
        return sha.hexdigest() == digest

    @contextmanager
    def open(self, digest: str) -> Iterator[BinaryIO]:
        """The object stored under ``digest`` as a file, for reading a large object in
        pieces (a dataset version checked batch by batch); verified first, in pieces."""
        target = self.path(digest)
        if not self._fs.exists(target) or not self._verified(digest):
            raise ArtifactCorruptedError(
                f"artifact {digest} at {target} is missing or does not match its hash; "
                "restore the artifact store from a backup or register the object again",
                details={"artifact": digest, "path": target},
            )
        with self._fs.open(target, "rb") as f:
            yield f

    def get(self, digest: str) -> bytes:
        """The bytes stored under ``digest``, verified against it."""
        target = self.path(digest)
        try:
            data: bytes = self._fs.cat_file(target)
        except FileNotFoundError:
            raise ArtifactCorruptedError(
                f"artifact {digest} is missing from {self.uri} (expected at {target}); "
                "restore the artifact store from a backup or register the object again",
                details={"artifact": digest, "path": target},
            ) from None
        actual = sha256(data)
        if actual != digest:
            raise ArtifactCorruptedError(
                f"artifact {digest} at {target} does not match its hash (found {actual}): "
                "the file was changed or damaged after it was stored, so it is refused; "
                "restore it from a backup or register the object again",
                details={"artifact": digest, "path": target, "actual": actual},
            )
        return data

    def exists(self, digest: str) -> bool:
        return bool(self._fs.exists(self.path(digest)))

    def delete(self, digest: str) -> bool:
        """Remove the bytes stored under ``digest`` (erasure); False if none were."""
        target = self.path(digest)
        if not self._fs.exists(target):
            return False
        if self._local:
            Path(target).unlink()
            _fsync_dir(Path(target).parent)
        else:
            self._fs.rm_file(target)
        return True


_PIECE = 1 << 20


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(_PIECE):
            sha.update(piece)
    return sha.hexdigest()


def _write_durably(target: Path, data: bytes) -> None:
    """Write to a temporary file, fsync it, then rename it into place (atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)

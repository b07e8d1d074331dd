"""Content-addressed artifact storage.

A file is stored under the sha256 of its bytes (``sha256/ab/abcdef…``), through
fsspec so that the same code writes to a local folder or an object-store URI
(``s3://bucket/prefix``; ``store/_remote.py`` says its failures in terms of the
setting). Content is never rewritten in place: storing the same bytes twice keeps one
object. Every read checks the bytes against their address, so a damaged or tampered
object is refused with :class:`ArtifactCorruptedError` and never turns into a wrong
model.

Durability, when ``put`` or ``put_file`` returns: in a local folder the file was
written to a temporary name, fsynced and renamed into place, and the folder fsynced.
On S3 the object was acknowledged by the store, which keeps it redundantly before it
acknowledges; an object appears whole or not at all (no temporary name is needed)
and is read back at once by any process (S3 is strongly consistent). An S3-compatible
store promises what its own deployment does (a one-disk MinIO, that disk).

A large object (a dataset written as it streams) is written to a *staging* file
first (``staging()``: in the store's own folder when it is local, so that the final
rename is atomic; else in the folder the store was given, the workspace's) and moved
into place by its hash with ``put_file``: the bytes are hashed from the file in 1 MiB
pieces, never held whole, and sent to S3 as a multipart upload of ``PART_SIZE``
parts, two at a time. Reading a remote object in pieces (``open``) copies it once,
block by block, into a staging file while hashing it, and hands over the verified
copy: memory stays at a few blocks whatever the object's size.

Whether an object exists is always asked of the store itself: s3fs caches listings,
and a listing made before another process wrote or deleted an object would be wrong.
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

from setpoint.errors import ArtifactCorruptedError
from setpoint.store._remote import (
    Place,
    is_object_store,
    missing_bucket,
    no_bucket,
    talking,
    unusable,
    upload_options,
)

# The parts of a multipart upload, and the blocks read from a remote store.
PART_SIZE = 8 << 20


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArtifactStore:
    """Bytes in, a sha256 address out; the address back, the same bytes or an error.

    ``setting`` names where ``uri`` came from (``artifacts_uri``) for messages;
    ``staging`` is the local folder large objects bound for a remote store are written
    in first (the system's temporary folder if not given)."""

    def __init__(self, uri: str, *, setting: str = "", staging: Path | None = None) -> None:
        self.uri = uri
        self._place = Place(uri, setting)
        try:
            self._fs, self._root = fsspec.core.url_to_fs(uri)
        except (ValueError, ImportError) as exc:
            raise unusable(self._place, exc) from None
        self._local = isinstance(self._fs, LocalFileSystem)
        self._objects = is_object_store(self._fs)
        self._bucket = self._root.split("/", 1)[0] if self._objects else ""
        if self._objects and not self._bucket:
            raise no_bucket(self._place)
        self._staging = staging
        self._upload = upload_options(self._fs, PART_SIZE)

    @property
    def is_local(self) -> bool:
        """Whether the store is a folder of this machine (not shared with others)."""
        return self._local

    def path(self, digest: str) -> str:
        return f"{self._root.rstrip('/')}/sha256/{digest[:2]}/{digest}"

    def check(self) -> None:
        """Make sure the store can be used: a folder is made if missing; a bucket must
        exist and answer with the credentials in force (it is never created)."""
        if self._local:
            Path(self._root).mkdir(parents=True, exist_ok=True)
        elif self._objects:
            self._check_bucket()
        else:
            with self._talking(writing=True):
                self._fs.makedirs(self._root, exist_ok=True)

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its sha256; durable when this returns."""
        digest = sha256(data)
        target = self.path(digest)
        if self._size(target) == len(data):
            try:
                self.get(digest)
                return digest
            except ArtifactCorruptedError:
                pass  # damaged: storing the object again repairs it
        if self._local:
            _write_durably(Path(target), data)
        else:
            with self._talking(writing=True):
                self._make_parent(target)
                self._fs.pipe_file(target, data)
        return digest

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh local file to write a large object into, removed on the way out
        unless ``put_file`` has moved it into the store."""
        if self._local:
            folder = Path(self._root) / "staging"
        else:
            folder = self._staging or Path(tempfile.gettempdir())
        folder.mkdir(parents=True, exist_ok=True)
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
        same_size = self._size(target) == path.stat().st_size
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
            with self._talking(writing=True):
                self._make_parent(target)
                self._fs.put_file(str(path), target, **self._upload)
            path.unlink()
        return digest

    def _verified(self, digest: str) -> bool:
        """Whether the object stored under ``digest`` is intact, read in pieces."""
        sha = hashlib.sha256()
        with self._talking(), self._fs.open(self.path(digest), "rb", block_size=PART_SIZE) as f:
            while piece := f.read(_PIECE):
                sha.update(piece)
        return sha.hexdigest() == digest

    @contextmanager
    def open(self, digest: str) -> Iterator[BinaryIO]:
        """The object stored under ``digest`` as a file, for reading a large object in
        pieces (a dataset version checked batch by batch); verified first, in pieces.
        A remote object is read once, into a local staging file, and that is handed
        over."""
        target = self.path(digest)
        if self._local:
            if self._size(target) is None or not self._verified(digest):
                raise self._damaged(digest, target)
            with open(target, "rb") as f:
                yield f
            return
        with self.staging() as copy:
            if self._fetch(target, copy) != digest:
                raise self._damaged(digest, target)
            with open(copy, "rb") as f:
                yield f

    def _fetch(self, target: str, copy: Path) -> str | None:
        """Copy the remote object ``target`` into the local file ``copy`` in pieces,
        returning the sha256 of what was copied (None if there is no such object)."""
        sha = hashlib.sha256()
        try:
            with self._talking():
                self._fs.invalidate_cache(target)
                source = self._fs.open(target, "rb", block_size=PART_SIZE)
        except FileNotFoundError:
            self._check_bucket()
            return None
        with source, open(copy, "wb") as out:
            while True:
                with self._talking():  # only the store's failures are the store's
                    piece = source.read(_PIECE)
                if not piece:
                    break
                sha.update(piece)
                out.write(piece)
        return sha.hexdigest()

    def _damaged(self, digest: str, target: str) -> ArtifactCorruptedError:
        return ArtifactCorruptedError(
            f"artifact {digest} at {target} is missing or does not match its hash; "
            "restore the artifact store from a backup or register the object again",
            details={"artifact": digest, "path": target},
        )

    def get(self, digest: str) -> bytes:
        """The bytes stored under ``digest``, verified against it."""
        target = self.path(digest)
        try:
            with self._talking():
                self._fs.invalidate_cache(target)
                data: bytes = self._fs.cat_file(target)
        except FileNotFoundError:
            self._check_bucket()
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
        return self._size(self.path(digest)) is not None

    def delete(self, digest: str) -> bool:
        """Remove the bytes stored under ``digest`` (erasure); False if none were.

        On S3 the object is deleted; in a bucket with versioning on, S3 keeps the
        earlier bytes as a noncurrent version until a lifecycle rule expires them."""
        target = self.path(digest)
        if self._size(target) is None:
            return False
        if self._local:
            Path(target).unlink()
            _fsync_dir(Path(target).parent)
        else:
            with self._talking():
                self._fs.rm_file(target)
                self._fs.invalidate_cache(target)
        return True

    # -- the store itself ----------------------------------------------------------

    def _size(self, target: str) -> int | None:
        """The size of the object at ``target``, None if there is none; asked of the
        store, never of a cached listing."""
        try:
            with self._talking():
                self._fs.invalidate_cache(target)
                info = self._fs.info(target)
        except FileNotFoundError:
            self._check_bucket()
            return None
        return int(info["size"]) if info.get("type") == "file" else None

    def _check_bucket(self) -> None:
        """Raise the missing-bucket error when the store's bucket does not exist (a
        missing object and a missing bucket look alike to fsspec)."""
        if not self._objects:
            return
        try:
            with self._talking():
                self._fs.invalidate_cache(self._bucket)
                self._fs.info(self._bucket)
        except FileNotFoundError:
            raise missing_bucket(self._place, self._bucket) from None

    def _make_parent(self, target: str) -> None:
        if not self._objects:  # an object store has no folders (s3fs would make a bucket)
            self._fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)

    @contextmanager
    def _talking(self, *, writing: bool = False) -> Iterator[None]:
        """Say a remote store's failures in terms of its setting (``_remote.talking``)."""
        if self._local:
            yield
            return
        with talking(self._place, self._bucket, writing=writing):
            yield


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

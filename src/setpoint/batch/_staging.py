"""Where a Ray run's pieces leave their files for the driver (``batch/ray_engine.py``):
a hidden folder beside the output, which every node reaches when the output is
where they all write.

For a local output (a shared file system on a cluster of several machines) it is a
folder beside it, ``.<name>.ray-<random>``: an actor writes a piece's file there under
a temporary name and renames it when whole. For an output in an object store
(``s3://...``) it is a prefix beside it in the same store,
``<folder>/.<name>.ray-<random>/``: an actor writes a piece's file on its own node
(in a temporary folder) and uploads it whole; an object store's upload is atomic (the
object appears whole or not at all), so it goes straight to its name, while another
fsspec file system gets it under a temporary name and a rename. Either way a piece
scored twice replaces its own file, never adds a second. The driver fetches each file
(a download, for a store) and removes the folder or prefix at the end, also after a
failure.

The driver writes a marker object into a store's prefix before any work is sent out:
a missing bucket, missing credentials or a store that does not answer are said
then, as a :class:`~setpoint.errors.StoreError` naming the output and the fix. An
actor uploads a file only while the marker is there, so the pieces still being
scored when a run fails (Ray stops its actors, but not at once) leave nothing behind
the driver's removal of the prefix.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from setpoint.batch.sources import Output, filesystem, is_uri, talking_to
from setpoint.errors import UsageError
from setpoint.store._remote import Place, is_object_store, talking

log = logging.getLogger(__name__)

MARKER = "run"  # the object the driver writes first into a store's prefix


class Staging:
    """The staging folder (a local path) or prefix (a URI) ``where``: made by the
    driver with :meth:`beside`, opened again from ``where`` on each actor."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.fs: Any = None  # fsspec.AbstractFileSystem for a prefix in a store
        self.root = where
        if is_uri(where):
            self.fs, self.root = filesystem(where)
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    @property
    def local(self) -> bool:
        return self.fs is None

    @classmethod
    def beside(cls, output: Output) -> Staging:
        """A new, empty staging folder or prefix beside ``output``."""
        name = Path(output.path).name
        if output.local:
            parent = Path(output.path).parent
            try:
                return cls(tempfile.mkdtemp(dir=parent, prefix=f".{name}.ray-"))
            except OSError as exc:
                raise UsageError(f"cannot write beside {output.path} ({exc.strerror})") from None
        folder = output.uri.rstrip("/").rsplit("/", 1)[0]
        staging = cls(f"{folder}/.{name}.ray-{uuid.uuid4().hex}")
        staging._start(output)
        return staging

    def _start(self, output: Output) -> None:
        """The prefix made (a folder, in a file system that has them) and a marker
        written: the store's failures said now, before any work is sent out."""
        place = Place(output.uri, what="output")
        bucket = self.root.split("/", 1)[0] if is_object_store(self.fs) else ""
        with talking(place, bucket, writing=True):
            if not is_object_store(self.fs):
                self.fs.makedirs(self.root, exist_ok=True)
            self.fs.pipe_file(self._key(MARKER), b"")

    def _key(self, name: str) -> str:
        return f"{self.root}/{name}"

    @property
    def scratch(self) -> Path:
        """A local folder where this process writes files on their way in (the
        staging folder itself when it is local) or out (fetched from a store)."""
        if self.fs is None:
            return Path(self.root)
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="setpoint-ray-")
        return Path(self._scratch.name)

    def publish(self, file: Path, name: str) -> None:
        """The whole local ``file`` given the staging name ``name`` (replacing what
        had it: a piece scored again); ``file`` is gone afterwards. Once the driver
        has removed the prefix (a failed run: actors may still be finishing pieces),
        nothing is written into it again."""
        if self.fs is None:
            os.replace(file, self._key(name))  # fails once the folder is removed
            return
        try:
            with talking_to(self.where):
                self.fs.invalidate_cache(self.root)  # the store's answer, not a listing's
                if not self.fs.exists(self._key(MARKER)):
                    return
                if is_object_store(self.fs):  # one upload: the object appears whole
                    self.fs.put_file(str(file), self._key(name))
                else:
                    partial = self._key(f".{uuid.uuid4().hex}.{name}")
                    self.fs.put_file(str(file), partial)
                    self.fs.mv(partial, self._key(name))
        finally:
            file.unlink(missing_ok=True)

    def fetch(self, name: str) -> Path:
        """A local path holding the staged file ``name``: the file itself, or (from a
        store) a download in :attr:`scratch` for the caller to remove."""
        if self.fs is None:
            return Path(self._key(name))
        copy = self.scratch / name
        with talking_to(self.where):
            self.fs.get_file(self._key(name), str(copy))
        return copy

    def remove(self) -> None:
        """The staging folder or prefix removed with what it holds; a store that
        fails now is said in the log, not raised over the run's own outcome."""
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
        if self.fs is None:
            shutil.rmtree(self.root, ignore_errors=True)
            return
        try:
            self.fs.invalidate_cache(self.root)
            self.fs.rm(self.root, recursive=True)
        except FileNotFoundError:
            pass
        except Exception as exc:  # the run's outcome matters more than its litter
            log.warning("could not remove the staging prefix %s: %s", self.where, exc)

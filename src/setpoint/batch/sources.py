"""Where batch scoring reads and writes: local paths, or fsspec URIs (``s3://...``).

An input is a path, a glob or a URI, expanded before anything is read (a glob on a
remote file system is expanded there, sorted by name), each file with a suffix the
reader knows. What a run records of each input identifies its content: a local
file's size and sha256, a remote object's size and ETag (the store's own fingerprint,
without downloading it a second time).
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from setpoint.data import io
from setpoint.data._sink import (
    PREDICT_COMPRESSION,
    SUFFIXES,
    RowSink,
    check_compression,
    check_output,
    parquet_writer,
)
from setpoint.errors import SetpointError, UsageError
from setpoint.store._remote import (
    Place,
    failure,
    is_object_store,
    is_store_failure,
    missing_bucket,
    talking,
)

_GLOB = frozenset("*?[")


@contextmanager
def talking_to(uri: str) -> Iterator[None]:
    """The object store's own failures (unreachable, no credentials, refused) while
    working on ``uri``, as a ``StoreError`` that says what to check."""
    try:
        yield
    except SetpointError:
        raise
    except Exception as exc:
        if is_store_failure(exc):
            raise failure(Place(uri), exc) from None
        raise


def is_uri(text: str) -> bool:
    """Whether ``text`` names a file through fsspec (``s3://...``), not a local path."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.isidentifier() and scheme != "file"


@dataclass(frozen=True)
class Source:
    """One input file: ``uri`` as the user sees it, ``fs`` and ``path`` to open it
    (``fs`` None for a local file)."""

    uri: str
    path: str
    size: int
    fs: Any = None  # fsspec.AbstractFileSystem for a remote file
    etag: str | None = None

    @property
    def local(self) -> bool:
        return self.fs is None

    @property
    def suffix(self) -> str:
        return Path(self.path).suffix.lower()

    @property
    def name(self) -> str:
        return Path(self.path).name

    def open(self) -> IO[bytes]:
        """A fresh binary stream of the file (seekable)."""
        if self.fs is None:
            return open(self.path, "rb")
        with talking_to(self.uri):
            handle: IO[bytes] = self.fs.open(self.path, "rb")
        return handle

    def describe(self) -> dict[str, Any]:
        """What a run records of this input: its URI, size and content fingerprint."""
        if self.fs is not None:
            return {"uri": self.uri, "size": self.size, "etag": self.etag}
        with open(self.path, "rb") as file:
            digest = hashlib.file_digest(file, "sha256").hexdigest()
        return {"uri": self.uri, "size": self.size, "sha256": digest}


def expand(given: str | Path | Sequence[str | Path]) -> list[Source]:
    """The input files: a path, a glob (sorted by name), a URI or a glob of URIs, or a
    list of any; each with a suffix the reader knows, before anything is read."""
    items = [given] if isinstance(given, str | Path) else list(given)
    found: list[Source] = []
    for item in items:
        text = str(item)
        found += _remote(text) if is_uri(text) else _local(text)
    for source in found:
        if source.suffix not in io.FORMATS:
            raise UsageError(
                f"{source.uri}: unsupported file type {Path(source.path).suffix!r}; "
                "give a .csv or .parquet file",
            )
    if not found:
        raise UsageError(f"{given}: no file matches; check the path and the pattern")
    return found


def _local(text: str) -> list[Source]:
    if _GLOB & set(text) and not Path(text).exists():
        matches = sorted(glob.glob(os.path.expanduser(text)))
        if not matches:
            raise UsageError(f"{text}: no file matches; check the path and the pattern")
        paths = [Path(m) for m in matches if Path(m).is_file()]
    else:
        paths = [Path(text).expanduser()]
    sources = []
    for path in paths:
        if path.suffix.lower() not in io.FORMATS:
            raise UsageError(
                f"{path}: unsupported file type {path.suffix!r}; give a .csv or .parquet file",
            )
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
        sources.append(Source(str(path), str(path), path.stat().st_size))
    return sources


def filesystem(uri: str) -> tuple[Any, str]:
    """The fsspec file system of ``uri`` and the path in it; a clear error when the
    scheme's package is missing."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except ImportError as exc:
        raise UsageError(
            f"{uri}: reading this kind of URI needs a package that is not installed "
            f"({exc}); for s3:// install it with: pip install 'setpoint[s3]'"
        ) from None
    except ValueError as exc:
        raise UsageError(f"{uri}: not a URI fsspec knows ({exc})") from None
    return fs, str(path)


def _remote(text: str) -> list[Source]:
    fs, path = filesystem(text)
    scheme = text.partition("://")[0]
    with talking_to(text):
        return _found(fs, path, text, scheme)


def _found(fs: Any, path: str, text: str, scheme: str) -> list[Source]:
    try:
        if _GLOB & set(path):
            infos = fs.glob(path, detail=True)
            entries = [infos[name] for name in sorted(infos)]
            entries = [e for e in entries if e.get("type") == "file"]
            if not entries:
                raise UsageError(f"{text}: no file matches; check the path and the pattern")
        else:
            info = fs.info(path)
            if info.get("type") != "file":
                raise UsageError(f"{text}: no such file (it is a folder); give a file or glob")
            entries = [info]
    except FileNotFoundError:
        raise UsageError(f"{text}: no such file") from None
    except PermissionError as exc:
        raise UsageError(f"{text}: not allowed to read it ({exc}); check the credentials") from None
    return [
        Source(
            uri=f"{scheme}://{fs._strip_protocol(e['name'])}",
            path=str(e["name"]),
            size=int(e.get("size") or 0),
            fs=fs,
            etag=_etag(e),
        )
        for e in entries
    ]


def _etag(info: dict[str, Any]) -> str | None:
    for key in ("ETag", "etag", "md5Hash", "md5"):
        value = info.get(key)
        if value:
            return str(value).strip('"')
    return None


# -------------------------------------------------------------------------- the output


class Sink(Protocol):
    """Where a file's scored rows go: written batch by batch, then given the output's
    name (``commit``) or thrown away (``discard``, a no-op once committed)."""

    def write(self, rows: pa.Table) -> None: ...

    def commit(self) -> None: ...

    def discard(self) -> None: ...


@dataclass(frozen=True)
class Output:
    """The file the scored rows go to: a local path, or a URI (``fs`` and ``path``);
    a Parquet file is written with ``compression``."""

    uri: str
    path: str
    fs: Any = None
    compression: str = PREDICT_COMPRESSION

    @property
    def local(self) -> bool:
        return self.fs is None

    def sink(self) -> Sink:
        if self.fs is None:
            return RowSink(Path(self.path), self.compression)
        return ObjectSink(self.fs, self.path, self.uri, self.compression)


def output(given: str | Path, compression: str | None = None) -> Output:
    """The output ``given`` names, refused before anything is read if it cannot be
    written (a suffix other than .csv or .parquet, a local folder that is not there).
    ``compression`` is for a Parquet output (default ``PREDICT_COMPRESSION``); a CSV
    file is written as text, so one given with it is refused."""
    text = str(given)
    if compression is not None:
        check_compression(compression)
        if Path(text).suffix.lower() == ".csv":
            raise UsageError(
                f"{text}: a .csv output is written uncompressed; leave the compression "
                "out, or write a .parquet file"
            )
    chosen = compression or PREDICT_COMPRESSION
    if not is_uri(text):
        local = Path(text).expanduser()
        check_output(local)
        return Output(str(local), str(local), compression=chosen)
    fs, path = filesystem(text)
    if Path(path).suffix.lower() not in SUFFIXES:
        raise UsageError(f"{text}: write the accepted rows to a .csv or .parquet file")
    if is_object_store(fs):  # a missing bucket said now, not after the scoring
        place, bucket = Place(text, what="output"), path.split("/", 1)[0]
        try:
            with talking(place, bucket):
                fs.invalidate_cache(bucket)
                fs.info(bucket)
        except FileNotFoundError:
            raise missing_bucket(place, bucket) from None
    return Output(text, path, fs, chosen)


class ObjectSink:
    """Rows streamed to a file through fsspec (an object store's multipart upload):
    the object appears whole when ``commit`` closes it, and ``discard`` aborts it, so a
    failed run leaves no object that looks whole."""

    def __init__(
        self, fs: Any, path: str, uri: str, compression: str = PREDICT_COMPRESSION
    ) -> None:
        self.fs = fs
        self.path = path
        self.uri = uri
        self.compression = compression
        self.rows = 0
        self._file: Any = None
        self._writer: pq.ParquetWriter | pa_csv.CSVWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, rows: pa.Table) -> None:
        if self._writer is None or self._schema is None:
            self._schema = rows.schema
            try:
                with talking_to(self.uri):
                    self._file = self.fs.open(self.path, "wb")
            except (OSError, PermissionError) as exc:
                raise UsageError(f"cannot write {self.uri} ({exc})") from None
            if self.path.lower().endswith(".csv"):
                self._writer = pa_csv.CSVWriter(self._file, rows.schema)
            else:
                self._writer = parquet_writer(self._file, rows.schema, self.compression)
        self._writer.write_table(rows.cast(self._schema))
        self.rows += rows.num_rows

    def commit(self) -> None:
        if self._writer is None:  # no rows at all: an empty file still says so
            self.write(pa.table({}))
        assert self._writer is not None
        bucket = self.path.split("/", 1)[0] if is_object_store(self.fs) else ""
        with talking(Place(self.uri, what="output"), bucket, writing=True):
            self._writer.close()
            self._writer = None
            self._file.close()  # the upload completes here
        self._file = None

    def discard(self) -> None:
        if self._file is None:
            return
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        discard = getattr(self._file, "discard", None)
        if discard is not None:
            discard()  # an unfinished upload, aborted (s3fs: its multipart upload)
            # Left open, the file would try to upload its (dropped) buffer when collected.
            self._file.closed = True
        else:
            self._file.close()
            self.fs.rm(self.path)
        self._file = None

"""A store URI on an object store (S3 and S3-compatible ones, through fsspec and s3fs):
what it is called in the settings, and its failures said in those terms.

A failure of the store is a :class:`StoreError` naming the URI, the setting it came
from and the fix (create the bucket, set the credentials, check ``AWS_ENDPOINT_URL``),
never a botocore traceback. Credentials and the endpoint are found the way every AWS
client finds them: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` or ``AWS_PROFILE``,
and ``AWS_ENDPOINT_URL`` for a store outside AWS (MinIO, Ceph, …).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fsspec import AbstractFileSystem

from setpoint.errors import ConfigError, DependencyMissingError, SetpointError, StoreError
from setpoint.settings import ENV_PREFIX

# Stores of objects under a bucket, written whole by one request: no folders to make
# (s3fs's makedirs would even create a missing bucket), no rename.
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az"})

_NO_CREDENTIALS = {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}
_UNREACHABLE = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
    "ProxyConnectionError",
    "ClientConnectorError",
}


@dataclass(frozen=True)
class Place:
    """A store's URI and the setting it came from, for messages."""

    uri: str
    setting: str = ""
    what: str = "artifact store"  # what the store holds, as messages name it

    def __str__(self) -> str:
        if not self.setting:
            return self.uri
        return f"{self.uri} (setting {self.setting}, {ENV_PREFIX}{self.setting.upper()})"

    @property
    def repoint(self) -> str:
        """How to give the store another URI."""
        if not self.setting:
            return "give the store another URI"
        return f"point {ENV_PREFIX}{self.setting.upper()} (or {self.setting}) elsewhere"


def _protocols(fs: AbstractFileSystem) -> tuple[str, ...]:
    return (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)


def is_object_store(fs: AbstractFileSystem) -> bool:
    return bool(OBJECT_STORES.intersection(_protocols(fs)))


def upload_options(fs: AbstractFileSystem, part_size: int) -> dict[str, Any]:
    """Keyword arguments of ``fs.put_file`` that bound its memory: s3fs reads
    ``max_concurrency`` parts of a multipart upload at once (by default 10 of 50 MiB)."""
    if "s3" in _protocols(fs):
        return {"chunksize": part_size, "max_concurrency": 2}
    return {}


def unusable(place: Place, exc: Exception) -> SetpointError:
    """The error for a URI fsspec cannot open (an unknown protocol, a missing package)."""
    if isinstance(exc, ImportError):
        extra = "s3" if place.uri.startswith(("s3://", "s3a://")) else ""
        fix = f"pip install 'setpoint[{extra}]'" if extra else "install the package it names"
        return DependencyMissingError(
            f"cannot open {place.what} {place}: {exc}; {fix}",
            details={"uri": place.uri, "setting": place.setting},
        )
    return ConfigError(
        f"cannot open {place.what} {place}: {exc}; use a folder or a URI such as "
        "s3://BUCKET/PREFIX",
        details={"uri": place.uri, "setting": place.setting},
    )


def no_bucket(place: Place) -> ConfigError:
    return ConfigError(
        f"{place.what} {place} names no bucket; use a URI such as s3://BUCKET/PREFIX",
        details={"uri": place.uri, "setting": place.setting},
    )


def missing_bucket(place: Place, bucket: str) -> StoreError:
    return StoreError(
        f"the bucket {bucket!r} of {place} does not exist; create it, or {place.repoint} "
        "to a bucket that exists (setpoint never creates one)",
        details={"uri": place.uri, "setting": place.setting, "bucket": bucket},
    )


def is_store_failure(exc: Exception) -> bool:
    """Whether ``exc`` is the store's (an OS or network error, or one of the S3
    client's), as opposed to a mistake in the code calling it."""
    clients = ("botocore", "aiobotocore", "aiohttp", "s3fs", "fsspec")
    return isinstance(exc, OSError) or any(
        c.__module__.split(".", 1)[0] in clients for c in type(exc).__mro__
    )


def failure(place: Place, exc: Exception) -> StoreError:
    """What went wrong talking to the store at ``place``, with the fix."""
    names = {c.__name__ for c in type(exc).__mro__}
    reason = str(exc) or type(exc).__name__
    details = {"uri": place.uri, "setting": place.setting, "reason": reason}
    if names & _NO_CREDENTIALS:
        return StoreError(
            f"no credentials for the object store of {place}: {reason}; set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment",
            details=details,
        )
    if isinstance(exc, PermissionError):
        return StoreError(
            f"the object store of {place} refused access: {reason}; check that the "
            "credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE) may read "
            "and write it",
            details=details,
        )
    if names & _UNREACHABLE or isinstance(exc, ConnectionError | TimeoutError):
        endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
        at = f" at {endpoint}" if endpoint else ""
        return StoreError(
            f"cannot reach the object store of {place}{at}: {reason}; check that it is up, "
            "and for a store outside AWS (MinIO, Ceph) that AWS_ENDPOINT_URL is its URL",
            details=details | {"endpoint": endpoint},
        )
    return StoreError(
        f"the object store of {place} failed: {reason}; check the store and the setting",
        details=details,
    )


@contextmanager
def talking(place: Place, bucket: str = "", *, writing: bool = False) -> Iterator[None]:
    """Say a remote store's failures in terms of ``place``; a missing object stays a
    FileNotFoundError, except on a write to an object store (``bucket``), where it
    means the bucket is missing."""
    try:
        yield
    except SetpointError:
        raise
    except FileNotFoundError as exc:
        if writing and bucket:
            raise missing_bucket(place, bucket) from exc
        raise
    except Exception as exc:
        if not is_store_failure(exc):
            raise
        raise failure(place, exc) from exc

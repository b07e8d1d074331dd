"""The artifact store, in a local folder and in an S3 bucket on loopback.

Every test here is marked ``every_store`` (tests/conftest.py): it runs once with the
store in a folder and once under ``s3://`` (moto on loopback, ``s3_support.py``). What
only an object store can do wrong (a missing bucket, no credentials, an endpoint that
does not answer, a listing cached by s3fs) is in ``test_object_store.py``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from s3_support import outside
from setpoint.errors import ArtifactCorruptedError
from setpoint.store.artifacts import ArtifactStore, sha256

pytestmark = pytest.mark.every_store


@pytest.fixture
def store_uri(storage: str | None, tmp_path: Path) -> str:
    return str(tmp_path / "store") if storage is None else f"{storage}/store"


def overwrite(store: ArtifactStore, digest: str, data: bytes) -> None:
    """Change an object behind the store's back, as another process or a person would."""
    fs, _ = outside(store.uri)
    fs.pipe_file(store.path(digest), data)


def stored_files(uri: str) -> list[str]:
    fs, root = outside(uri)
    return sorted(p[len(root) :] for p in fs.find(root))


def test_bytes_come_back_by_their_hash(store_uri: str) -> None:
    store = ArtifactStore(store_uri)
    digest = store.put(b"model bytes")
    assert digest == sha256(b"model bytes")
    assert store.get(digest) == b"model bytes"
    assert store.put(b"model bytes") == digest  # stored once
    assert stored_files(store_uri) == [f"/sha256/{digest[:2]}/{digest}"]


def test_a_tampered_artifact_is_refused(store_uri: str) -> None:
    store = ArtifactStore(store_uri)
    digest = store.put(b"the real model")
    overwrite(store, digest, b"a different model")
    with pytest.raises(ArtifactCorruptedError, match="does not match its hash") as info:
        store.get(digest)
    assert info.value.details["artifact"] == digest
    opening = store.open(digest)
    with pytest.raises(ArtifactCorruptedError, match="does not match its hash"), opening:
        pass


def test_a_missing_artifact_is_a_clear_error(store_uri: str) -> None:
    store = ArtifactStore(store_uri)
    digest = store.put(b"x")
    fs, _ = outside(store_uri)
    fs.rm_file(store.path(digest))
    assert not store.exists(digest)
    with pytest.raises(ArtifactCorruptedError, match="missing"):
        store.get(digest)
    with pytest.raises(ArtifactCorruptedError, match="missing"), store.open(digest):
        pass


def test_storing_an_object_again_repairs_its_damaged_file(store_uri: str) -> None:
    store = ArtifactStore(store_uri)
    digest = store.put(b"model bytes")
    overwrite(store, digest, b"model bytez")
    with pytest.raises(ArtifactCorruptedError):
        store.get(digest)
    assert store.put(b"model bytes") == digest
    assert store.get(digest) == b"model bytes"


def test_a_staged_file_is_moved_in_and_read_back_in_pieces(store_uri: str) -> None:
    store = ArtifactStore(store_uri)
    data = bytes(range(256)) * (3 * 4096 + 7)  # a few pieces and a partial one
    with store.staging() as staged:
        staged.write_bytes(data)
        digest = store.put_file(staged)
        assert not staged.exists()  # moved, not copied
    assert digest == hashlib.sha256(data).hexdigest()
    with store.open(digest) as f:
        pieces = iter(lambda: f.read(50_000), b"")
        assert b"".join(pieces) == data
    with store.staging() as again:  # the same content again: one object
        again.write_bytes(data)
        assert store.put_file(again) == digest
    assert stored_files(store_uri) == [f"/sha256/{digest[:2]}/{digest}"]


def test_a_staged_file_is_removed_when_it_is_not_stored(store_uri: str) -> None:
    store = ArtifactStore(store_uri)
    with store.staging() as staged:
        staged.write_bytes(b"half a dataset")
    assert not staged.exists()
    assert stored_files(store_uri) == []


def test_a_damaged_object_is_repaired_by_storing_its_file_again(store_uri: str) -> None:
    store = ArtifactStore(store_uri)
    with store.staging() as staged:
        staged.write_bytes(b"dataset bytes")
        digest = store.put_file(staged)
    overwrite(store, digest, b"dataset bytez")
    with store.staging() as again:
        again.write_bytes(b"dataset bytes")
        assert store.put_file(again) == digest
    assert store.get(digest) == b"dataset bytes"


def test_delete_removes_the_object(store_uri: str) -> None:
    store = ArtifactStore(store_uri)
    digest = store.put(b"a subject's rows")
    kept = store.put(b"everyone else's rows")
    assert store.delete(digest)
    assert not store.delete(digest)
    assert not store.exists(digest)
    assert stored_files(store_uri) == [f"/sha256/{kept[:2]}/{kept}"]


def test_an_object_written_by_another_process_is_seen(store_uri: str) -> None:
    writer = ArtifactStore(store_uri)
    reader = ArtifactStore(store_uri)
    assert not reader.exists(sha256(b"late"))
    digest = writer.put(b"late")
    assert reader.exists(digest)
    assert reader.get(digest) == b"late"

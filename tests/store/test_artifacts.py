from __future__ import annotations

from pathlib import Path

import pytest

from setpoint.errors import ArtifactCorruptedError, SetpointError
from setpoint.store.artifacts import ArtifactStore, sha256


def test_bytes_come_back_by_their_hash(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    digest = store.put(b"model bytes")
    assert digest == sha256(b"model bytes")
    assert store.get(digest) == b"model bytes"
    assert store.put(b"model bytes") == digest  # stored once
    assert len(list(tmp_path.rglob("*"))) == 3  # sha256/, sha256/xx/, the file


def test_a_tampered_artifact_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    digest = store.put(b"the real model")
    Path(store.path(digest)).write_bytes(b"a different model")
    with pytest.raises(ArtifactCorruptedError, match="does not match its hash") as info:
        store.get(digest)
    assert info.value.details["artifact"] == digest


def test_a_missing_artifact_is_a_clear_error(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    digest = store.put(b"x")
    Path(store.path(digest)).unlink()
    with pytest.raises(ArtifactCorruptedError, match="missing"):
        store.get(digest)


def test_an_fsspec_uri_works(tmp_path: Path) -> None:
    store = ArtifactStore("memory://setpoint-test")
    digest = store.put(b"in memory")
    assert store.get(digest) == b"in memory"


def test_an_unknown_protocol_is_a_setpoint_error() -> None:
    with pytest.raises(SetpointError, match="cannot open artifact store"):
        ArtifactStore("nosuchprotocol://bucket/x")


def test_storing_an_object_again_repairs_its_damaged_file(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "a"))
    digest = store.put(b"model bytes")
    path = Path(store.path(digest))
    path.write_bytes(b"model bytez")
    with pytest.raises(ArtifactCorruptedError):
        store.get(digest)
    assert store.put(b"model bytes") == digest
    assert store.get(digest) == b"model bytes"

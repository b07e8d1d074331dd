"""What only an object store can get wrong, on an S3 API on loopback (moto).

A mistake in the store's settings (a bucket that does not exist, no credentials, an
endpoint that does not answer, a URI without a bucket) is a ``SetpointError`` naming
the setting and the fix, never a botocore traceback. A listing cached by s3fs is never
trusted for whether an object exists. A large object is sent in parts.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3_support import outside
from setpoint.errors import ArtifactCorruptedError, ConfigError, SetpointError, StoreError
from setpoint.store.artifacts import PART_SIZE, ArtifactStore, sha256
from setpoint.workspace import Workspace

pytestmark = pytest.mark.s3


@pytest.fixture
def fresh_clients(s3_endpoint: str) -> Iterator[None]:
    """s3fs keeps one client per process, made with the environment of its time; a
    test that changes the environment (credentials, endpoint) needs new ones, and
    leaves none of its own behind."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    yield
    s3fs.S3FileSystem.clear_instance_cache()


def missing_bucket() -> str:
    return f"s3://setpoint-absent-{uuid.uuid4().hex[:12]}"


def test_a_bucket_that_does_not_exist_names_the_setting_and_is_not_created(
    s3_endpoint: str, tmp_path: Path
) -> None:
    uri = f"{missing_bucket()}/artifacts"
    store = ArtifactStore(uri, setting="artifacts_uri")
    digest = sha256(b"model")
    attempts = {
        "put": lambda: store.put(b"model"),
        "get": lambda: store.get(digest),
        "exists": lambda: store.exists(digest),
        "delete": lambda: store.delete(digest),
        "check": store.check,
    }
    for what, attempt in attempts.items():
        with pytest.raises(StoreError) as caught:
            attempt()
        message = caught.value.message
        assert "does not exist" in message, what
        assert uri in message, what
        assert "SETPOINT_ARTIFACTS_URI" in message, what
    with store.staging() as staged:
        staged.write_bytes(b"dataset")
        with pytest.raises(StoreError, match="does not exist"):
            store.put_file(staged)
    with pytest.raises(StoreError, match="does not exist"), store.open(digest):
        pass
    fs, bucket = outside(uri.rsplit("/", 1)[0])
    assert not fs.exists(bucket)  # a store never creates its bucket


def test_a_workspace_whose_bucket_does_not_exist_is_not_created(
    s3_endpoint: str, tmp_path: Path
) -> None:
    uri = f"{missing_bucket()}/data"
    with pytest.raises(StoreError, match=r"SETPOINT_DATA_URI") as caught:
        Workspace.init(tmp_path / "ws", data_uri=uri)
    assert uri in caught.value.message
    assert not (tmp_path / "ws" / "setpoint.toml").exists()  # so it can be given again


def test_the_command_line_says_it_without_a_traceback(s3_endpoint: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from setpoint.cli.main import app

    uri = f"{missing_bucket()}/artifacts"
    result = CliRunner().invoke(app, ["--artifacts-uri", uri, "init", str(tmp_path / "ws")])
    assert result.exit_code == StoreError.exit_code, result.output
    said = " ".join(result.output.split())
    assert "does not exist" in said
    assert "SETPOINT_ARTIFACTS_URI" in said
    assert "Traceback" not in said


def test_missing_credentials_are_named(
    s3_bucket: str, fresh_clients: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = ArtifactStore(f"{s3_bucket}/artifacts", setting="artifacts_uri")
    with pytest.raises(StoreError, match="credentials") as caught:
        store.put(b"model")
    assert "AWS_ACCESS_KEY_ID" in caught.value.message
    assert "SETPOINT_ARTIFACTS_URI" in caught.value.message


def test_an_endpoint_that_does_not_answer_is_named(
    s3_bucket: str, fresh_clients: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    store = ArtifactStore(f"{s3_bucket}/data", setting="data_uri")
    for attempt in (lambda: store.put(b"rows"), lambda: store.get(sha256(b"rows"))):
        with pytest.raises(StoreError, match="cannot reach") as caught:
            attempt()
        assert f"127.0.0.1:{port}" in caught.value.message
        assert "AWS_ENDPOINT_URL" in caught.value.message
        assert "SETPOINT_DATA_URI" in caught.value.message


def test_a_uri_without_a_bucket_is_a_config_error(s3_endpoint: str) -> None:
    with pytest.raises(ConfigError, match=r"artifacts_uri.*no bucket.*s3://BUCKET"):
        ArtifactStore("s3://", setting="artifacts_uri")


def test_a_store_whose_package_is_missing_says_what_to_install() -> None:
    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed here, so gcs:// URIs open")
    with pytest.raises(SetpointError, match=r"data_uri.*gcsfs"):
        ArtifactStore("gcs://bucket/data", setting="data_uri")


def test_an_unknown_protocol_is_a_setpoint_error() -> None:
    with pytest.raises(ConfigError, match="cannot open artifact store"):
        ArtifactStore("nosuchprotocol://bucket/x")


def test_an_fsspec_uri_works() -> None:
    store = ArtifactStore("memory://setpoint-test")
    digest = store.put(b"in memory")
    assert store.get(digest) == b"in memory"


def test_a_cached_listing_never_hides_a_change_by_another_process(s3_bucket: str) -> None:
    import fsspec

    uri = f"{s3_bucket}/artifacts"
    store = ArtifactStore(uri)
    digest = store.put(b"model")
    folder = store.path(digest).rsplit("/", 1)[0]
    fsspec.filesystem("s3").ls(folder)  # any code in this process may list it (s3fs caches)
    fs, _ = outside(uri)
    fs.rm_file(store.path(digest))
    assert not store.exists(digest)
    with pytest.raises(ArtifactCorruptedError, match="missing"):
        store.get(digest)
    assert store.put(b"model") == digest  # stored again, not skipped as present
    assert fs.cat_file(store.path(digest)) == b"model"


def test_a_large_object_goes_up_in_parts_and_comes_back_in_ranges(
    s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = ArtifactStore(f"{s3_bucket}/data")
    size = 4 * PART_SIZE + 12345
    with store.staging() as staged:
        with open(staged, "wb") as f:
            for i in range(size // 65536 + 1):
                f.write(i.to_bytes(4, "big") * 16384)
            f.truncate(size)
        digest = store.put_file(staged)
    fs, _ = outside(store.uri)
    etag = fs.info(store.path(digest))["ETag"].strip('"')
    assert etag.endswith(f"-{math.ceil(size / PART_SIZE)}")  # a multipart upload
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="werkzeug"), store.open(digest) as f:
        assert sum(len(p) for p in iter(lambda: f.read(1 << 20), b"")) == size
    # The loopback server's own log: the object came in ranges of about a part each
    # (a read in pieces, verified on the way), never in one response.
    key = f"GET /{store.path(digest)}"
    gets = [r.getMessage() for r in caplog.records if key in r.getMessage()]
    assert all('" 206 ' in g for g in gets), gets
    assert len(gets) >= size // (PART_SIZE + (1 << 20))


def test_staging_for_a_remote_store_is_in_the_folder_it_is_given(
    s3_bucket: str, tmp_path: Path
) -> None:
    store = ArtifactStore(f"{s3_bucket}/data", staging=tmp_path / "staging")
    with store.staging() as staged:
        assert staged.parent == tmp_path / "staging"
        assert os.access(staged, os.W_OK)

"""An S3 API on loopback (moto in server mode), for the object-store tests.

One server per test session on a free port; each test gets a bucket of its own,
emptied and removed afterwards. The endpoint and dummy credentials are set in the
environment (``AWS_ENDPOINT_URL`` and friends), which is how s3fs and boto3 find an
S3-compatible store outside AWS, so workspace settings hold plain ``s3://`` URIs.
Without moto or s3fs a test skips with the reason, except when
``SETPOINT_REQUIRE_S3=1`` (set by CI), where it fails.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator

import pytest
from fsspec import AbstractFileSystem

REQUIRE_S3 = os.environ.get("SETPOINT_REQUIRE_S3", "") not in ("", "0")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The loopback S3 endpoint's URL, with the environment pointing at it."""
    try:
        import s3fs  # noqa: F401
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        reason = (
            f"the S3 test server is not installed ({exc}); "
            "install it with: pip install 'moto[server]' s3fs"
        )
        if REQUIRE_S3:
            pytest.fail(reason + " (SETPOINT_REQUIRE_S3 is set, so this fails)")
        pytest.skip(reason)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per S3 request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in _ENV}
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> Iterator[str]:
    """A fresh bucket for one test, as ``s3://NAME``; removed with its objects after."""
    import s3fs

    name = f"setpoint-test-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.mkdir(name)
    yield f"s3://{name}"
    fs.rm(name, recursive=True)


def outside(uri: str) -> tuple[AbstractFileSystem, str]:
    """The file system under ``uri`` and the path in it, as another process sees them:
    an instance of its own, sharing no cached listing with the store under test."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri, skip_instance_cache=True)
    return fs, path

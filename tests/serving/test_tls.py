"""HTTPS: `setpoint serve --tls-cert --tls-key`, checked before it starts, and the official
clients predicting over it with a CA made for the test (nothing from the network)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import trustme
import uvicorn
from cryptography.hazmat.primitives import serialization
from serving_support import TLS, setpoint_serve
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from setpoint.cli.main import app
from setpoint.serving.tls import CIPHERS, check_tls
from setpoint.workspace import Workspace

ROWS = [{"x": -1.5}, {"x": 0.25}, {"x": 2.0}]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> TLS:
    folder = tmp_path_factory.mktemp("tls")
    server = ca.issue_cert("127.0.0.1", "localhost")
    files = TLS(folder / "server.crt", folder / "server.key", folder / "ca.pem")
    server.cert_chain_pems[0].write_to_path(str(files.cert))
    server.private_key_pem.write_to_path(str(files.key))
    ca.cert_pem.write_to_path(str(files.ca))
    return files


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A workspace serving a small model at endpoint ``credit``."""
    workspace = Workspace.init(tmp_path_factory.mktemp("ws") / "ws", actor="tester")
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"x": rng.normal(size=200)})
    data["y"] = (data["x"] > 0).astype(int)
    model = LogisticRegression().fit(data[["x"]], data["y"])
    workspace.register_model("clf", model, reference=data, target="y")
    workspace.promote("clf", 1)
    workspace.deploy("credit", model="clf")
    yield workspace
    workspace.close()


def serve(ws: Workspace, *args: str, columns: int = 80) -> Any:
    env = {"COLUMNS": str(columns)}
    return CliRunner(env=env).invoke(app, ["-w", str(ws.root), "serve", *args])


# ---------------------------------------------------------------------------- mistakes


def other_files(tls: TLS, ca: trustme.CA, folder: Path) -> dict[str, Path]:
    """Files that are wrong in every way a person can get them wrong."""
    other = ca.issue_cert("127.0.0.1")
    key = serialization.load_pem_private_key(other.private_key_pem.bytes(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    files = {
        "other.key": other.private_key_pem.bytes(),
        "encrypted.key": encrypted,
        "junk.pem": b"hello\n",
        "broken.crt": b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return {name: folder / name for name in files}


@pytest.mark.parametrize(
    ("cert", "key", "message"),
    [
        ("missing.crt", "server.key", "missing.crt: no such file"),
        ("server.crt", ".", "is a folder"),
        ("server.crt", None, "give both --tls-cert and --tls-key"),
        (None, "server.key", "give both --tls-cert and --tls-key"),
        ("junk.pem", "server.key", "holds no PEM certificate"),
        ("server.crt", "junk.pem", "holds no PEM private key"),
        ("server.crt", "other.key", "is not the private key of the certificate"),
        ("server.crt", "encrypted.key", "encrypted with a passphrase"),
        ("broken.crt", "server.key", "cannot be loaded together"),
    ],
)
def test_a_wrong_tls_file_is_named_without_a_traceback(
    ws: Workspace,
    tls: TLS,
    ca: trustme.CA,
    tmp_path: Path,
    cert: str | None,
    key: str | None,
    message: str,
) -> None:
    files = {
        **other_files(tls, ca, tmp_path),
        "server.crt": tls.cert,
        "server.key": tls.key,
        "missing.crt": tmp_path / "missing.crt",
        ".": tmp_path,
    }
    args = []
    if cert is not None:
        args += ["--tls-cert", str(files[cert])]
    if key is not None:
        args += ["--tls-key", str(files[key])]

    # Wide enough that a long temporary path is not wrapped inside a file name.
    result = serve(ws, *args, columns=300)

    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())  # unwrapped
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------------- options


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What ``uvicorn.run`` was asked for, instead of running it."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    for name in ("SETPOINT_WORKSPACE", "SETPOINT_SERVE_OVERRIDES", "SETPOINT_SERVE_BACKGROUND"):
        monkeypatch.delenv(name, raising=False)  # serve sets them: put them back after
    return calls


def test_a_bind_beyond_loopback_without_tls_warns(
    ws: Workspace, tls: TLS, started: list[dict[str, Any]]
) -> None:
    plain = serve(ws, "--host", "0.0.0.0", "--insecure")
    assert plain.exit_code == 0, plain.output
    assert "warning: 0.0.0.0 is reachable from other machines" in " ".join(plain.output.split())
    assert "on http://0.0.0.0:8000" in plain.output
    assert all(len(line) <= 80 for line in plain.output.splitlines())

    secure = serve(
        ws,
        "--host",
        "0.0.0.0",
        "--insecure",
        "--tls-cert",
        str(tls.cert),
        "--tls-key",
        str(tls.key),
    )
    assert secure.exit_code == 0, secure.output
    assert "warning" not in secure.output
    assert "on https://0.0.0.0:8000" in secure.output
    assert "ssl_certfile" not in started[0]
    assert {k: v for k, v in started[1].items() if k.startswith("ssl_")} == {
        "ssl_certfile": str(tls.cert),
        "ssl_keyfile": str(tls.key),
        "ssl_ciphers": CIPHERS,
    }

    loopback = serve(ws)
    assert loopback.exit_code == 0, loopback.output
    assert "warning" not in loopback.output


def test_check_tls_accepts_a_chain_with_its_key(tls: TLS) -> None:
    assert check_tls(None, None) is None
    files = check_tls(tls.cert, tls.key)
    assert files is not None
    assert (files.cert, files.key) == (tls.cert, tls.key)


# ---------------------------------------------------------------------------- over HTTPS


@pytest.fixture(scope="module")
def https(ws: Workspace, tls: TLS, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("server") / "server.log"
    with setpoint_serve(ws.root, log, tls=tls) as served:
        yield served.url


@pytest.mark.slow
def test_httpx_predicts_over_https_with_the_test_ca(ws: Workspace, tls: TLS, https: str) -> None:
    assert https.startswith("https://")
    expected = ws.load_model("clf@champion").predict_proba(pd.DataFrame(ROWS))
    assert expected is not None
    with httpx.Client(verify=tls.client_context(), timeout=30) as client:
        response = client.post(f"{https}/v1/endpoints/credit/predict", json={"records": ROWS})
    assert response.status_code == 200, response.text
    assert response.http_version == "HTTP/1.1"
    np.testing.assert_allclose(response.json()["probabilities"], expected, atol=1e-9)


@pytest.mark.slow
def test_a_client_that_does_not_trust_the_ca_is_refused(https: str) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{https}/healthz", verify=ssl.create_default_context(), timeout=30)
    plain = https.replace("https://", "http://")
    with pytest.raises(httpx.TransportError):  # plain HTTP is not answered on this port
        httpx.get(f"{plain}/healthz", timeout=30).raise_for_status()


@pytest.mark.slow
def test_the_triton_client_predicts_over_https_with_the_test_ca(
    ws: Workspace, tls: TLS, https: str
) -> None:
    import tritonclient.http as triton

    expected = ws.load_model("clf@champion").predict_proba(pd.DataFrame(ROWS))
    client = triton.InferenceServerClient(
        url=https.removeprefix("https://"), ssl=True, ssl_options={"ca_certs": str(tls.ca)}
    )
    try:
        assert client.is_server_ready()
        metadata = client.get_model_metadata("credit")
        inputs = []
        for tensor in metadata["inputs"]:
            name, datatype = tensor["name"], tensor["datatype"]
            array = np.array(
                [r[name] for r in ROWS], dtype=triton.triton_to_np_dtype(datatype)
            ).reshape(-1, 1)
            infer_input = triton.InferInput(name, list(array.shape), datatype)
            infer_input.set_data_from_numpy(array)
            inputs.append(infer_input)
        result = client.infer("credit", inputs)
    finally:
        client.close()
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, atol=1e-9)
    assert result.get_response()["model_name"] == "credit"

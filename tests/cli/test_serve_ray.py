"""``setpoint serve --engine ray`` refuses what it cannot do, naming what to do instead
(before it starts Ray: these need no cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import Cli, loans


@pytest.fixture
def served(cli: Cli, tmp_path: Path) -> Cli:
    path = tmp_path / "loans.csv"
    loans().to_csv(path, index=False)
    cli("data", "add", "loans", str(path))
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: risk\ndataset: loans@latest\ntarget: defaulted\n")
    cli("train", str(spec))
    cli("models", "promote", "risk@1")
    cli("deploy", "credit", "--model", "risk@champion")
    return cli


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "spark"], "--engine 'spark': use local or ray"),
        (["--engine", "ray", "--workers", "2"], "on Ray, give --replicas"),
        (["--engine", "ray", "--min-replicas", "1"], "needs both --min-replicas and --max"),
        (
            ["--engine", "ray", "--replicas", "2", "--min-replicas", "1", "--max-replicas", "3"],
            "not both",
        ),
        (["--engine", "ray", "--min-replicas", "3", "--max-replicas", "2"], "at most"),
        (["--engine", "ray", "--replicas", "0"], "--replicas must be 1 or more"),
        (["--engine", "ray", "--background", "loop"], "run `setpoint loop` once"),
    ],
)
def test_what_ray_cannot_do_is_refused_with_the_fix(
    served: Cli, args: list[str], message: str
) -> None:
    served.fails("serve", *args, code=2, message=message)


def test_tls_on_ray_is_refused_with_where_to_terminate_it(served: Cli, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    import trustme

    ca = trustme.CA()
    issued = ca.issue_cert("localhost")
    issued.cert_chain_pems[0].write_to_path(cert)
    issued.private_key_pem.write_to_path(key)
    served.fails(
        "serve",
        "--engine",
        "ray",
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        code=2,
        message="terminate TLS at the load balancer",
    )

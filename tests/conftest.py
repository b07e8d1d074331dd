"""Shared fixtures: a real workspace on every storage backend.

Tests that take ``workspace`` (or ``database_url``) run once on SQLite and once on
the real PostgreSQL server, each in a database of its own that is dropped afterwards.
Without a reachable PostgreSQL the PostgreSQL runs skip with the reason, except when
``SETPOINT_REQUIRE_POSTGRES=1`` (set by CI), where they fail.

Tests marked ``every_store`` also run once with the artifacts, dataset versions and the
prediction log's store in the workspace's folder and once in an S3 bucket on loopback
(``s3_support.py``; with PostgreSQL only); the
mark is kept to the tests that exercise storage, so the suite is not run twice.

``demo`` is ``setpoint demo`` run once for the whole test run (it takes ~25 s), in
whichever pytest-xdist worker asks first: the demo's own test checks what it did, and
the dashboard's browser test serves a copy of its workspace.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from demo_support import DemoRun, shared_demo
from s3_support import s3_bucket, s3_endpoint  # noqa: F401  (fixtures for every test)

if TYPE_CHECKING:
    from setpoint.workspace import Workspace


POSTGRES_ADMIN_URL = os.environ.get(
    "SETPOINT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES = os.environ.get("SETPOINT_REQUIRE_POSTGRES", "") not in ("", "0")
_RUN = uuid.uuid4().hex[:8]


@pytest.fixture(scope="session", autouse=True)
def _documents_match_their_schemas() -> Iterator[None]:
    """Whatever a test reads as a spec, contract, policy or monitor settings, the
    published JSON Schema must accept too (documents_support.py)."""
    from documents_support import watching

    with watching():
        yield


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine]:
    engine = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:  # any failure to connect means "not available here"
        engine.dispose()
        reason = (
            f"PostgreSQL is not reachable at {engine.url.render_as_string()}: {exc}. "
            "Start it, or point SETPOINT_TEST_POSTGRES_URL at one."
        )
        if REQUIRE_POSTGRES:
            pytest.fail(reason + " (SETPOINT_REQUIRE_POSTGRES is set, so this fails)")
        pytest.skip(reason)
    yield engine
    engine.dispose()


@contextmanager
def _postgres_database(admin: sa.Engine, template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database (empty, or a copy of ``template``), dropped afterwards."""
    name = f"setpoint_test_{_RUN}_{uuid.uuid4().hex[:8]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"{copy}'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres_url(postgres_admin: sa.Engine) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    with _postgres_database(postgres_admin) as url:
        yield url


# A workspace's database starts as a copy of one migrated once per test process: the
# migrations take longer than many tests (~0.3 s: alembic reads its 14 scripts each
# time), and a copy of their result is the same database. Tests of the migrations
# themselves, and every Workspace.init outside the ``workspace`` fixture, still migrate.


@pytest.fixture(scope="session")
def _postgres_template(postgres_admin: sa.Engine) -> Iterator[str]:
    from setpoint.store.db import Database

    with _postgres_database(postgres_admin) as url:
        db = Database(url)
        db.migrate()
        db.dispose()  # a template is copied only while nobody is connected to it
        yield sa.make_url(url).database or ""


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from setpoint.store.db import Database, sqlite_url

    path = tmp_path_factory.mktemp("template") / "setpoint.db"
    db = Database(sqlite_url(path))
    db.migrate()
    db.dispose()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None for the default (SQLite in the workspace), or a PostgreSQL URL: an empty
    database, or for a test with a ``workspace`` a migrated one (see above)."""
    if request.param == "sqlite":
        yield None
        return
    admin: sa.Engine = request.getfixturevalue("postgres_admin")
    template = None
    if "workspace" in request.fixturenames:
        template = request.getfixturevalue("_postgres_template")
    with _postgres_database(admin, template) as url:
        yield url


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("every_store") is None:
        return
    if "storage" not in metafunc.fixturenames:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid} is marked every_store but takes neither "
            "`workspace` nor `storage`, so it would run on one store only"
        )
    stores = ["local", pytest.param("s3", marks=pytest.mark.s3)]
    metafunc.parametrize("storage", stores, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """An S3 bucket is tried with PostgreSQL only, the pair machines share: what the
    store does does not depend on the database, and SQLite with S3 would run every
    ``every_store`` test a fourth time. Tests marked ``one_database`` (a protocol, a
    model format: the database only holds their fixtures) run on SQLite only; the
    stores they use are tested on both databases in their own modules."""
    kept, dropped = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        params = params.params if params is not None else {}
        pair = (params.get("database_url"), params.get("storage"))
        one = pair[0] == "postgresql" and item.get_closest_marker("one_database") is not None
        (dropped if pair == ("sqlite", "s3") or one else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    # With several pytest-xdist workers, the Ray tests run in one of them: they share
    # one cluster per process, and two clusters would fight over the machine's cores.
    for item in items:
        if "ray_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("ray"))


@pytest.fixture
def storage(request: pytest.FixtureRequest) -> str | None:
    """Where artifacts and dataset versions are kept: None for the workspace's own
    folders, or (tests marked ``every_store``, second run) a fresh ``s3://`` bucket."""
    if getattr(request, "param", "local") == "local":
        return None
    bucket: str = request.getfixturevalue("s3_bucket")
    return bucket


@pytest.fixture
def workspace(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str | None, storage: str | None
) -> Iterator[Workspace]:
    from setpoint.workspace import Workspace

    stores: dict[str, str] = {}
    if storage is not None:
        stores = {
            "artifacts_uri": f"{storage}/artifacts",
            "data_uri": f"{storage}/data",
            "log_uri": f"{storage}/logs",
            "log_seal_seconds": "0.5",  # an erasure waits this (and 5 s) for other machines
        }
    if database_url is None:
        template: Path = request.getfixturevalue("_sqlite_template")
        (tmp_path / "ws").mkdir()
        with (
            closing(sqlite3.connect(template)) as source,
            closing(sqlite3.connect(tmp_path / "ws" / "setpoint.db")) as copy,
        ):
            source.backup(copy)
    ws = Workspace.init(tmp_path / "ws", database_url=database_url, actor="tester", **stores)
    yield ws
    ws.close()


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """``setpoint demo`` run once for the test run, in whichever worker asks first
    (demo_support.py). Tests that change the workspace work on a copy of ``demo.root``."""
    if os.environ.get("PYTEST_XDIST_WORKER"):  # the workers' folders share a parent
        return shared_demo(tmp_path_factory.getbasetemp().parent / "demo")
    return shared_demo(tmp_path_factory.mktemp("demo"))

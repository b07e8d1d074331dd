from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from setpoint.errors import StoreError
from setpoint.store.db import HEAD, Database, sqlite_url
from setpoint.store.schema import datasets, metadata
from setpoint.workspace import Workspace


@pytest.fixture
def db(tmp_path: Path, database_url: str | None) -> Database:
    database = Database(database_url or sqlite_url(tmp_path / "meta.db"))
    yield database
    database.dispose()


def test_migrations_reach_the_declared_schema(db: Database) -> None:
    db.migrate()
    assert db.revision() == db.head()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_the_head_opening_compares_with_is_alembics(db: Database) -> None:
    # A new migration needs HEAD moved to it, or an older database would be taken
    # for an up-to-date one.
    assert db.head() == HEAD


def test_opening_an_up_to_date_workspace_does_not_load_alembic(tmp_path: Path) -> None:
    Workspace.init(tmp_path / "ws").close()
    probe = (
        "import sys\n"
        "from setpoint.workspace import Workspace\n"
        f"Workspace.open({str(tmp_path / 'ws')!r}).close()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_an_older_workspace_is_migrated_on_open(tmp_path: Path, database_url: str | None) -> None:
    root = tmp_path / "old"
    ws = Workspace.init(root, database_url=database_url)
    url = ws.db.url
    ws.close()
    # Take the schema back to the first revision, as an older setpoint left it,
    # with data in it.
    old = Database(url)
    from alembic import command

    with old.engine.connect() as conn:
        config = old._alembic_config(conn)
        with conn.begin():
            command.downgrade(config, "0001")
        with conn.begin():
            conn.execute(datasets.insert().values(name="kept", created_at=datetime.now(UTC)))
    assert old.revision() == "0001"
    old.dispose()

    reopened = Workspace.open(root)
    assert reopened.db.revision() == reopened.db.head() != "0001"
    with reopened.db.read() as conn:
        assert conn.execute(sa.select(datasets.c.name)).scalars().all() == ["kept"]
    reopened.close()


def test_a_database_from_a_newer_setpoint_is_refused(db: Database) -> None:
    db.migrate()
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="newer setpoint"):
        db.migrate()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    db = Database(sqlite_url(tmp_path / "meta.db"))
    with db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    db.dispose()


def test_a_failed_write_leaves_nothing(db: Database) -> None:
    db.migrate()

    def crash_mid_transaction() -> None:
        with db.write() as conn:
            conn.execute(datasets.insert().values(name="ghost", created_at=datetime.now(UTC)))
            raise RuntimeError("crash mid-transaction")

    with pytest.raises(RuntimeError):
        crash_mid_transaction()
    with db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(datasets)).scalar() == 0


def test_bad_urls_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a SQLAlchemy URL"):
        Database("not a url")
    unreachable = Database("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StoreError, match="cannot reach"):
        unreachable.revision()


def test_processes_opening_a_new_workspace_at_once_migrate_it_once(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    (root / "setpoint.toml").write_text("[setpoint]\n")
    script = f"from setpoint.workspace import Workspace; Workspace.open(r'{root}').close()"

    def open_in_a_process(_: int) -> subprocess.CompletedProcess[bytes]:
        command = [sys.executable, "-c", script]
        return subprocess.run(command, capture_output=True, timeout=120, check=False)

    with ThreadPoolExecutor(6) as pool:
        runs = list(pool.map(open_in_a_process, range(6)))
    assert [run.stderr.decode() for run in runs if run.returncode] == []
    database = Database(sqlite_url(root / "setpoint.db"))
    assert database.revision() == database.head()
    database.dispose()

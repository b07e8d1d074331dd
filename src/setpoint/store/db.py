"""The metadata database: one SQLAlchemy engine, the same code on SQLite and PostgreSQL.

SQLite runs in WAL mode with one writer at a time: every write transaction starts
with ``BEGIN IMMEDIATE`` so a read-modify-write (promoting an alias, numbering a new
version) holds the write lock from its first read, and a second writer waits up to
the busy timeout instead of failing half-way. On PostgreSQL the same transactions
lock the rows they change with ``SELECT ... FOR UPDATE`` (see :func:`ensure_named`
and the registry's model lock).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from setpoint.errors import StoreError, UsageError

if TYPE_CHECKING:
    from alembic.config import Config

_IMMEDIATE = "setpoint_immediate"
# The newest revision in migrations/versions. Opening a workspace whose database is
# stamped with it reads that one row and does not import alembic, which costs some
# 0.07 CPU-s (50 modules, with Mako and Pygments) on every command; alembic runs only
# to migrate. tests/store/test_db.py checks that this is alembic's head.
HEAD = "0014"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


class Database:
    """The metadata store of one workspace."""

    def __init__(self, url: str, *, busy_timeout: float = 30.0) -> None:
        self.url = url
        try:
            parsed = sa.make_url(url)
        except sa.exc.ArgumentError:
            raise StoreError(
                f"database_url {url!r} is not a SQLAlchemy URL; expected e.g. "
                "'sqlite:///path/setpoint.db' or 'postgresql+psycopg://user@host/db'"
            ) from None
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        try:
            if self.is_sqlite:
                self.engine = self._sqlite_engine(url, busy_timeout)
            else:
                self.engine = sa.create_engine(url, pool_pre_ping=True)
        except ModuleNotFoundError as exc:
            raise StoreError(
                f"the driver for {parsed.drivername!r} is not installed ({exc.name}); "
                "for PostgreSQL install it with: pip install 'setpoint[postgres]'"
            ) from None

    @staticmethod
    def _sqlite_engine(url: str, busy_timeout: float) -> Engine:
        engine = sa.create_engine(url, connect_args={"timeout": busy_timeout})

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
            # Let us issue BEGIN ourselves (pysqlite's implicit BEGIN is deferred).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: an acknowledged registry change survives a power cut, not only a crash.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get(_IMMEDIATE, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: commits on success, rolls back on any error."""
        with self._connect() as conn:
            conn.execution_options(**{_IMMEDIATE: True})
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction: one consistent snapshot."""
        with self._connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            conn = self.engine.connect()
        except sa.exc.OperationalError as exc:
            raise StoreError(
                f"cannot reach the metadata database {self.safe_url}: {exc.orig}",
            ) from None
        with conn:
            try:
                yield conn
            except sa.exc.OperationalError as exc:
                raise StoreError(
                    f"the metadata database {self.safe_url} failed: {exc.orig}; if another "
                    "process held the write lock, retry (or raise sqlite_busy_timeout)",
                ) from None

    @property
    def safe_url(self) -> str:
        return sa.make_url(self.url).render_as_string(hide_password=True)

    # -- schema ---------------------------------------------------------------

    def _alembic_config(self, conn: Connection) -> Config:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", "setpoint.store:migrations")
        config.attributes["connection"] = conn
        return config

    def revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self._connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head(self) -> str:
        from alembic.script import ScriptDirectory

        with self._connect() as conn:
            head = ScriptDirectory.from_config(self._alembic_config(conn)).get_current_head()
        assert head is not None
        return head

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` (the newest by default).

        Opening an up-to-date workspace only reads. Otherwise the migration runs under
        the write lock (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL)
        and checks the revision again, so processes opening one workspace at once
        migrate it once.
        """
        if revision == "head" and self._stamped() == HEAD:
            return
        if revision == "head" and self.revision() == self.head():
            return
        with self._connect() as conn:
            conn.execution_options(**{_IMMEDIATE: True})
            with conn.begin():
                if not self.is_sqlite:
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(74120001)"))
                self._upgrade(conn, revision)

    def _stamped(self) -> str | None:
        """The one revision the database is stamped with, read without alembic (None
        when there is none, or more than one)."""
        with self._connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            found = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        return str(found[0][0]) if len(found) == 1 else None

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold the lock called ``name`` against every process on every machine that
        uses this database: a session advisory lock on PostgreSQL, held on a connection
        of its own (it goes with the session if the holder dies). Waits for it.

        SQLite has no such lock; a workspace on SQLite is on one machine, where a file
        lock does (raises UsageError)."""
        if self.is_sqlite:
            raise UsageError("a SQLite workspace has no lock across machines; use a file lock")
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        with self._connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()

    def _upgrade(self, conn: Connection, revision: str) -> None:
        from alembic import command
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        config = self._alembic_config(conn)
        script = ScriptDirectory.from_config(config)
        current = MigrationContext.configure(conn).get_current_revision()
        if current is not None and current not in {s.revision for s in script.walk_revisions()}:
            raise StoreError(
                f"the metadata database {self.safe_url} is at schema revision {current!r}, "
                "which this version of setpoint does not know: it was written by a newer "
                "setpoint; upgrade setpoint to open it",
            )
        command.upgrade(config, revision)

    def dispose(self) -> None:
        self.engine.dispose()


def ensure_named(db: Database, conn: Connection, table: sa.Table, name: str, **values: Any) -> int:
    """The id of the row called ``name`` in ``table``, created if absent, and locked.

    ``INSERT … ON CONFLICT DO NOTHING`` then ``SELECT … FOR UPDATE``: two writers that
    race to create the same name both end up holding the one row, one after the other,
    which also serializes whatever they number under it (versions).
    """
    insert = sqlite_insert if db.is_sqlite else postgresql_insert
    conn.execute(
        insert(table).values(name=name, **values).on_conflict_do_nothing(index_elements=["name"])
    )
    query = sa.select(table.c.id).where(table.c.name == name)
    if not db.is_sqlite:
        query = query.with_for_update()
    return int(conn.execute(query).scalar_one())

"""Engines, transactions and schema migrations for the registry.

SQLite runs in WAL mode with a busy timeout, and write transactions start with ``BEGIN IMMEDIATE`` so two
writers queue instead of failing on a lock upgrade. PostgreSQL write paths lock rows with
``SELECT ... FOR UPDATE``. Database errors become :class:`~canaryflow.errors.RegistryUnavailable` here.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import ProgrammingError as SAProgrammingError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

from canaryflow.errors import RegistryUnavailable, ValidationFailed

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
_IMMEDIATE: contextvars.ContextVar[bool] = contextvars.ContextVar("cf_sqlite_immediate", default=False)
_MIGRATED: set[str] = set()
_MIGRATE_LOCK = threading.Lock()
PG_MIGRATION_LOCK = 0x63616E617279  # pg_advisory_xact_lock key shared by every migrating process


def redact(url: str) -> str:
    """The URL without its password, for error messages."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def create_engine(url: str) -> sa.Engine:
    """An engine for ``url`` with the SQLite pragmas and transaction mode the registry relies on."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise RegistryUnavailable(f"invalid database URL {url!r}: use e.g. sqlite:///canaryflow.db") from exc
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, pool_pre_ping=True, future=True)
    memory = parsed.database in (None, "", ":memory:")
    connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    kwargs: dict[str, Any] = {"connect_args": connect_args}
    if memory:
        kwargs["poolclass"] = StaticPool
    elif parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (SQLAlchemy's pysqlite recipe)
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if _IMMEDIATE.get() else "BEGIN")

    return engine


@contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Turn driver-level failures into :class:`RegistryUnavailable` naming the database (a value the
    database refuses, e.g. too long for its column, into :class:`ValidationFailed`)."""
    try:
        yield
    except OperationalError as exc:
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        raise RegistryUnavailable(f"registry database {redact(url)} unavailable: {detail}") from exc
    except DataError as exc:
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        raise ValidationFailed(f"the registry database rejected a value: {detail}") from exc
    except SAProgrammingError as exc:
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        raise RegistryUnavailable(
            f"registry database {redact(url)} is not usable ({detail}): is its schema up to date?"
        ) from exc


@contextmanager
def write_session(engine: sa.Engine) -> Iterator[Session]:
    """A session in one write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success."""
    token = _IMMEDIATE.set(True)
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            yield session
    finally:
        _IMMEDIATE.reset(token)


@contextmanager
def read_session(engine: sa.Engine) -> Iterator[Session]:
    """A session for reads (one transaction, rolled back at the end)."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


def _alembic_config(connection: sa.Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest migration revision shipped with this package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def current_revision(engine: sa.Engine) -> str | None:
    """The database's schema revision (None for an empty database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: sa.Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` in one transaction; concurrent callers queue, then no-op."""
    key = f"{engine.url!r}@{revision}"
    if revision == "head" and key in _MIGRATED:
        return
    with _MIGRATE_LOCK:
        token = _IMMEDIATE.set(True)
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})")
                target = head_revision() if revision == "head" else revision
                if MigrationContext.configure(conn).get_current_revision() != target:
                    command.upgrade(_alembic_config(conn), revision)
        finally:
            _IMMEDIATE.reset(token)
        if revision == "head":
            _MIGRATED.add(key)


__all__ = [
    "create_engine",
    "current_revision",
    "head_revision",
    "migrate",
    "read_session",
    "redact",
    "translate_errors",
    "write_session",
]

"""Engine and session setup. Sessions are scoped to one request or one job, never global."""

import collections
import fcntl
import itertools
import os
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy import Connection, Engine, Select, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from storage.models import Base
from storage.money import SQLITE_AGGREGATES

CONNECT_TIMEOUT = 5  # seconds
SQLITE_BUSY_TIMEOUT = 30  # seconds a writer waits for SQLite's write lock before failing


class Database:
    """One engine and two kinds of session: `read()` and `write()`.

    On SQLite a write session starts with BEGIN IMMEDIATE, so it holds the database's write
    lock from its first statement: read-then-write sequences never deadlock on lock upgrade,
    and writers queue instead of failing: the gateway's own writers take turns first
    (`WriterTurn`), anything else waits on the busy timeout.
    """

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.is_postgresql = url.startswith(("postgresql", "postgres"))
        if self.is_sqlite:
            engine_kwargs.setdefault(
                "connect_args", {"timeout": SQLITE_BUSY_TIMEOUT, "check_same_thread": False})
        else:
            engine_kwargs.setdefault("pool_pre_ping", True)
            if self.is_postgresql:
                # a database host that stops answering must give 94 in seconds, not hang
                engine_kwargs.setdefault("connect_args", {"connect_timeout": CONNECT_TIMEOUT})
        self.engine: Engine = create_engine(url, **engine_kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = sessionmaker(
            self.engine.execution_options(sqlite_immediate=True), expire_on_commit=False
        )
        path = self.sqlite_file
        self._turn = WriterTurn(path, SQLITE_BUSY_TIMEOUT) if path else None

    @property
    def sqlite_file(self) -> str | None:
        """The SQLite database's file, or None (another database, or SQLite in memory)."""
        path = self.engine.url.database if self.is_sqlite else None
        if not path or path == ":memory:" or path.startswith("file:"):
            return None
        return path

    def create_schema(self) -> None:
        """A new database's tables, straight from the models, marked as migrated to head
        (tests and in-process use; deployments run `seqr-gateway migrate`)."""
        from storage import migrations

        Base.metadata.create_all(self.engine)
        if migrations.current(self.engine) is None:
            migrations.stamp(self.engine)

    def migrate(self) -> None:
        from storage import migrations

        migrations.upgrade(self.engine)

    def check_schema(self, *, upgrade_if_behind: bool) -> None:
        from storage import migrations

        migrations.check(self.engine, upgrade_if_behind=upgrade_if_behind)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader() as session, session.begin():
            yield session

    def writer_turn(self) -> AbstractContextManager[None]:
        """This process's turn among the gateway's SQLite writers (`WriterTurn`), taken
        before a write transaction begins; nothing to take on other databases."""
        return self._turn() if self._turn else nullcontext()

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self.writer_turn(), self._writer() as session, session.begin():
            yield session

    @contextmanager
    def read_rows(self) -> "Iterator[Rows]":
        """A read transaction straight on a pooled driver connection, for the hottest read
        (the register's once-a-second poll), made of `NarrowQuery`s only. A session, or even
        a Core connection, costs more than the poll's two statements together."""
        dialect = self.engine.dialect
        dbapi = self.engine.raw_connection()
        try:
            with _driver_errors(dbapi, dialect, "BEGIN", None):
                if self.is_sqlite:  # autocommit mode (see _configure_sqlite): begin it here
                    dbapi.driver_connection.execute("BEGIN")
            yield Rows(dbapi, dialect)
            with _driver_errors(dbapi, dialect, "COMMIT", None):
                dbapi.commit()
        finally:
            dbapi.close()  # back to the pool, which rolls back whatever is left

    def dispose(self) -> None:
        self.engine.dispose()


class WriterTurn:
    """The gateway's SQLite writers take turns on a lock file before BEGIN IMMEDIATE.

    A writer that finds SQLite's database locked sleeps and retries with a growing backoff
    (1, 2, 5, 10, ... 100 ms): under contention that backoff, not the work, made the p99 of
    every write (two processes committing 1 ms transactions: p99 34 ms, worst 0.5 s; with
    turns, p99 3-5 ms and 50% more commits per second). Here the gateway's writers of one
    database queue on `flock` of `<database>-writelock` instead, and go as soon as the
    writer before them is done. Threads of one process queue on a lock of their own first
    (a flock belongs to the open file, which they share); the file is opened once per
    process, after any fork. A writer that waits longer than the busy timeout goes on
    without its turn, into SQLite's own wait; so does anything else that writes the file.
    Durability is SQLite's, unchanged (WAL, synchronous NORMAL).
    """

    def __init__(self, database_path: str, timeout: float) -> None:
        self.path = database_path + "-writelock"
        self.timeout = timeout
        self._threads = threading.Lock()
        self._file: IO[bytes] | None = None
        self._pid: int | None = None

    @contextmanager
    def __call__(self) -> Iterator[None]:
        deadline = time.monotonic() + self.timeout
        if not self._threads.acquire(timeout=self.timeout):
            yield
            return
        try:
            locked = self._lock(deadline)
            try:
                yield
            finally:
                if locked:
                    fcntl.flock(self._file, fcntl.LOCK_UN)  # type: ignore[arg-type]
        finally:
            self._threads.release()

    def _lock(self, deadline: float) -> bool:
        if self._pid != os.getpid():  # first use in this process (a worker forked with it)
            try:
                self._file = open(self.path, "ab")  # noqa: SIM115 (the lock lives on it)
            except OSError:  # no such directory, read-only: SQLite will say what is wrong
                return False
            self._pid = os.getpid()
        pause = 0.0001
        while True:
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)  # type: ignore[arg-type]
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, 0.0005)


class NarrowQuery:
    """A narrow SELECT of the hottest path, run on the driver's cursor.

    SQLAlchemy's execution of a statement (compiled-cache lookup, execution context, result
    object, Row) costs about 40 us here, ten times what SQLite takes to answer a primary-key
    lookup: most of the once-a-second poll. This compiles the statement once per dialect
    with SQLAlchemy and keeps its SQL, parameter order and the columns' result processors
    (so a UTCDateTime still comes back aware, a Money as Decimal), then runs it on the
    cursor of the connection the handle's transaction holds. Parameters are ints and
    strings, passed as they are (no bind processing). A driver error comes out as
    SQLAlchemy's (`DBAPIError`), as from any other statement, and a connection found dead
    is not reused.
    """

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._forms: dict[str, tuple[Any, str, Any, Any, list[Any]]] = {}

    def first(self, handle: "Session | Connection | Rows", **params: Any) -> Any:
        """The first row (a named tuple of the selected columns), or None."""
        dbapi, dialect = _driver(handle)
        compiled, sql, order, names, processors = self._form(dialect)
        values = compiled.construct_params(params)
        arguments = [values[name] for name in order] if order else values
        with _driver_errors(dbapi, dialect, sql, arguments):
            cursor = dbapi.cursor()
            try:
                cursor.execute(sql, arguments)
                row = cursor.fetchone()
            finally:
                cursor.close()
        if row is None:
            return None
        return names._make(
            value if process is None else process(value)
            for value, process in zip(row, processors, strict=True))

    def _form(self, dialect: Any) -> tuple[Any, str, Any, Any, list[Any]]:
        form = self._forms.get(dialect.name)
        if form is None:
            compiled = self.statement.compile(dialect=dialect)
            columns = list(self.statement.selected_columns)
            names = collections.namedtuple(  # type: ignore[misc]
                "Row", [column.key for column in columns], rename=True)
            processors = [column.type.dialect_impl(dialect).result_processor(dialect, None)
                          for column in columns]
            form = self._forms[dialect.name] = (
                compiled, compiled.string, compiled.positiontup, names, processors)
        return form


@dataclass(frozen=True)
class Rows:
    """A read transaction on a pooled driver connection, for `NarrowQuery`s only
    (`Database.read_rows`)."""

    dbapi: Any
    dialect: Any


def _driver(handle: "Session | Connection | Rows") -> tuple[Any, Any]:
    """The driver connection a handle's transaction holds, and its dialect."""
    if isinstance(handle, Rows):
        return handle.dbapi, handle.dialect
    connection = handle.connection() if isinstance(handle, Session) else handle
    return connection.connection, connection.dialect


@contextmanager
def _driver_errors(dbapi: Any, dialect: Any, sql: str | None, params: Any) -> Iterator[None]:
    """Driver errors raised as SQLAlchemy raises them; a dead connection invalidated."""
    try:
        yield
    except dialect.loaded_dbapi.Error as error:
        dead = dialect.is_disconnect(error, dbapi, None)
        if dead:
            dbapi.invalidate(error)
        raise DBAPIError.instance(sql, params, error, dialect.loaded_dbapi.Error,
                                  connection_invalidated=dead, dialect=dialect) from error


_cursor_names = itertools.count(1)


def stream_rows(session: Session, statement: Select[Any], batch: int, *,
                binary: bool = False) -> Iterator[list[tuple]]:
    """The rows of a SELECT as the driver gives them, `batch` at a time, in the session's
    transaction: plain tuples, no SQLAlchemy result processing (a `Money` column comes as
    its stored integer). For documents of millions of rows, where SQLAlchemy's Row objects
    would cost more than everything else done per row.

    On PostgreSQL the rows come through a server-side (named) cursor, `batch` per round
    trip, so the client holds one batch at a time; SQLite's cursor steps through the result
    as it is fetched. Bound parameters go to the driver as they are: ints and strings only.
    `binary` asks PostgreSQL for its binary result format: a bytea column then travels as
    its bytes, not as hex text twice their size that both ends encode and decode.
    """
    connection = session.connection()
    compiled = statement.compile(dialect=connection.dialect)
    values = compiled.construct_params()
    names = compiled.positiontup
    params: Any = [values[name] for name in names] if names is not None else values
    dbapi_connection = connection.connection
    if connection.dialect.name == "postgresql":
        cursor = dbapi_connection.driver_connection.cursor(
            name=f"stream_{next(_cursor_names)}", binary=binary)
    else:
        cursor = dbapi_connection.cursor()
    try:
        cursor.execute(compiled.string, params)
        while rows := cursor.fetchmany(batch):
            yield rows
    finally:
        cursor.close()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # let SQLAlchemy's "begin" event emit BEGIN, so IMMEDIATE can be chosen per session
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        for name, arity, aggregate in SQLITE_AGGREGATES:
            dbapi_connection.create_aggregate(name, arity, aggregate)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate")
        # straight to the driver: this runs for every transaction, and going through
        # exec_driver_sql cost more than the rest of a read's BEGIN/COMMIT together
        connection.connection.driver_connection.execute(
            "BEGIN IMMEDIATE" if immediate else "BEGIN")

"""Engine and session setup. Sessions are scoped to one request or one job, never global."""

import fcntl
import itertools
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import IO, Any

from sqlalchemy import Connection, Engine, Select, create_engine, event
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
        path = self.engine.url.database if self.is_sqlite else None
        self._turn = (WriterTurn(path, SQLITE_BUSY_TIMEOUT)
                      if path and path != ":memory:" and not path.startswith("file:") else None)

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

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self._turn() if self._turn else nullcontext(), self._writer() as session, \
                session.begin():
            yield session

    @contextmanager
    def read_rows(self) -> Iterator[Connection]:
        """A read transaction on a plain connection, without an ORM session: for the hottest
        read (the register's once-a-second poll), which is made of narrow statements only.
        A session costs about as much again as two such statements."""
        with self.engine.connect() as connection, connection.begin():
            yield connection

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


def rows_of(handle: Session | Connection) -> Connection:
    """Where a narrow (Core) statement runs: a session's connection, or the connection given.
    Run there, it skips the ORM's execution path, which costs more than the statement."""
    return handle.connection() if isinstance(handle, Session) else handle


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

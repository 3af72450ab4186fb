"""The request journal: every SOAP exchange, one row each, the newest `keep` kept.

A call's entry is queued in its process and written with the others queued within
`FLUSH_SECONDS` in one transaction, by a thread of the writer's own (`Writer`); readers
`settle()` first. After every `PRUNE_EVERY` entries a process also deletes those older than
the newest `keep` (by id), so the table stays bounded (about `keep + PRUNE_EVERY` rows per
process at most). Passwords (`password`, `newPassword` elements) are masked in the stored
bodies, which are cut at `BODY_LIMIT`.

Where it is kept: `database(db)`. On PostgreSQL, in the gateway's database. On a SQLite file,
in a file of its own beside it (`<file>-requests`): the journal commits up to fifty times a second
per process, and in the gateway's own file each of those commits would take the write lock
the gateway's writers queue for, and make every other connection drop its page cache (SQLite
does when another connection has changed the file), the register's poll included.
"""

import atexit
import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql import Select

from storage.database import Database
from storage.models import JournalEntry, Notification, NotificationAttempt

log = logging.getLogger(__name__)

PRUNE_EVERY = 100
#: a process writes its queued entries this often; a call that finds MAX_QUEUED queued (the
#: writer's thread behind) writes them itself, so the queue stays bounded
FLUSH_SECONDS = 0.02
MAX_QUEUED = 2000
#: the journal's own file beside a SQLite database's
SQLITE_FILE_SUFFIX = "-requests"
_CREATE_TABLE = CreateTable(JournalEntry.__table__, if_not_exists=True)
#: readers wait this long for every process's queued entries (see `settle`)
SETTLE_SECONDS = 0.1
#: bodies are stored up to this many bytes (a report's answer may be megabytes)
BODY_LIMIT = 8 * 1024
MASK = "***"
_PASSWORD = re.compile(
    rb"(<(?:[\w.-]+:)?(?:password|newPassword)(?:\s[^>]*)?>)[^<]*(</(?:[\w.-]+:)?"
    rb"(?:password|newPassword)\s*>)"
)


def mask_passwords(body: bytes) -> str:
    """The body as text, every password element's content replaced by ***."""
    if b"assword" not in body:  # most answers: no regex pass needed
        return body.decode("utf-8", "replace")
    return _PASSWORD.sub(rb"\1" + MASK.encode() + rb"\2", body).decode("utf-8", "replace")


def stored_body(body: bytes) -> str:
    """What the journal keeps of a body: masked, and cut at BODY_LIMIT bytes."""
    if len(body) <= BODY_LIMIT:
        return mask_passwords(body)
    return (mask_passwords(body[:BODY_LIMIT])
            + f"... [{len(body)} bytes, the first {BODY_LIMIT} kept]")


def database(db: Database) -> Database:
    """Where the journal of the gateway's database `db` is kept (see the module's text): `db`
    itself, or on a SQLite file a database of its own beside it, its table made if missing.
    A file that cannot be made now (its folder missing, say) leaves the gateway starting as
    it does with its own database away: the writer makes the table once it can."""
    path = db.sqlite_file
    if path is None:
        return db
    own = Database(db.engine.url.set(database=path + SQLITE_FILE_SUFFIX)
                   .render_as_string(hide_password=False))
    try:
        with own.writer_turn(), own.engine.begin() as connection:
            connection.execute(_CREATE_TABLE)
    except DBAPIError as error:
        log.warning("the request journal's file cannot be opened yet: %s", error.orig)
    return own


@contextlib.contextmanager
def opened(db: Database) -> Iterator[Database]:
    """`database(db)` for a short while (a command): its own file's connections are closed
    at the end, as `serve` closes its database's before gunicorn forks the workers."""
    kept_in = database(db)
    try:
        yield kept_in
    finally:
        if kept_in is not db:
            kept_in.dispose()


@dataclass
class Exchange:
    """What the wire layer learned about one SOAP exchange."""

    at: datetime
    path: str
    operation: str | None = None
    principal_type: str | None = None
    principal_id: str | None = None
    user_id: str | None = None
    terminal_id: str | None = None
    http_status: int = 200
    result_code: int | None = None
    fault: str | None = None
    latency_ms: float = 0.0
    injected: str | None = None
    deviations: list[dict[str, Any]] = field(default_factory=list)
    request: bytes = b""
    response: bytes = b""
    #: the fault rule's hit on this call (`gateway.control.faults.Hit`), if any
    hit: Any = None

    @property
    def principal(self) -> str:
        if self.principal_id is None:
            return "-"
        who = f"{self.principal_type or '?'} {self.principal_id}"
        return f"{who}/{self.user_id}" if self.user_id else who

    @property
    def outcome(self) -> str:
        if self.result_code is not None:
            return str(self.result_code)
        return self.fault.split(":", 1)[0] if self.fault else f"HTTP {self.http_status}"


_COLUMNS = ("at", "operation", "path", "principal_type", "principal_id", "user_id",
            "terminal_id", "http_status", "result_code", "fault", "latency_ms", "injected",
            "deviations", "request", "response")


class Writer:
    """Writes entries behind the answers: `write` queues the row in this process, and the
    writer's own thread inserts what is queued in one transaction once the oldest has waited
    `FLUSH_SECONDS`. A SOAP call pays neither a commit nor a wait for the write lock: on
    SQLite a commit per call cost ~10% of a benchmarkingNop, and a call that wrote the queue
    itself now and then waited behind the other processes' writers. Readers of the journal
    call `settle()` first. Rows go straight through the database driver on a connection of
    the writer's own (SQLAlchemy's session would cost more than the INSERTs), in the writers'
    turn on SQLite (`Database.writer_turn`); on PostgreSQL that connection does not wait for
    the WAL flush (`synchronous_commit off`): a database crash may lose the last entries,
    nothing else. `db` is where the journal is kept: `database(gateway_db)`.
    """

    def __init__(self, db: Database, keep: int) -> None:
        self.db = db
        self.keep = keep
        dialect = db.engine.dialect
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self._insert = (f"INSERT INTO journal_entries ({', '.join(_COLUMNS)}) "
                        f"VALUES ({', '.join([mark] * len(_COLUMNS))})")
        self._prune = ("DELETE FROM journal_entries WHERE id <= "
                       f"(SELECT max(id) FROM journal_entries) - {mark}")
        self._begin = "BEGIN IMMEDIATE" if db.is_sqlite else "BEGIN"
        self._at = JournalEntry.__table__.c.at.type.bind_processor(dialect) or (lambda v: v)
        self._queued: list[tuple[Any, ...]] = []
        self._queue_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending = threading.Event()
        self._thread: threading.Thread | None = None
        self._held: Any = None
        self._since_prune = 0

    def write(self, exchange: Exchange) -> None:
        """Queue the exchange's entry; it is in the database within FLUSH_SECONDS."""
        row = (
            self._at(exchange.at), exchange.operation, exchange.path[:200],
            _cut(exchange.principal_type, 32), _cut(exchange.principal_id, 200),
            _cut(exchange.user_id, 64), _cut(exchange.terminal_id, 64),
            exchange.http_status, exchange.result_code, exchange.fault,
            round(exchange.latency_ms, 3), exchange.injected,
            json.dumps(exchange.deviations) if exchange.deviations else None,
            stored_body(exchange.request), stored_body(exchange.response),
        )
        with self._queue_lock:
            self._queued.append(row)
            behind = len(self._queued) >= MAX_QUEUED
        if self._thread is None:
            self._start()
        if behind:
            self.flush()
        elif not self._pending.is_set():
            self._pending.set()

    def flush(self) -> None:
        """Insert what is queued now, in one transaction."""
        with self._flush_lock:
            with self._queue_lock:
                rows, self._queued = self._queued, []
            if rows:
                self._insert_rows(rows)

    def _start(self) -> None:
        with self._queue_lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="journal", daemon=True)
        self._thread.start()
        atexit.register(self._flush_quietly)

    def _run(self) -> None:
        while True:
            self._pending.wait()
            time.sleep(FLUSH_SECONDS)  # gather what comes meanwhile into the same commit
            self._pending.clear()
            self._flush_quietly()

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except Exception:  # the answers stand; the journal is the tester's aid
            log.warning("journal entries not written", exc_info=True)

    def _connection(self) -> Any:
        connection = self._held
        if connection is None:
            connection = self.db.engine.raw_connection()
            driver = connection.driver_connection
            if self.db.is_postgresql:
                driver.autocommit = True  # BEGIN and COMMIT are ours
                driver.execute("SET synchronous_commit TO OFF")
            elif self.db.sqlite_file is not None:  # its own file: made now if it was not then
                driver.execute(str(_CREATE_TABLE.compile(dialect=self.db.engine.dialect)))
            self._held = connection
        return connection

    def _insert_rows(self, rows: list[tuple[Any, ...]]) -> None:
        connection = self._connection()
        try:
            with self.db.writer_turn():
                cursor = connection.cursor()
                try:
                    cursor.execute(self._begin)
                    cursor.executemany(self._insert, rows)
                    self._since_prune += len(rows)
                    if self._since_prune >= PRUNE_EVERY:
                        cursor.execute(self._prune, (self.keep,))
                        self._since_prune = 0
                    cursor.execute("COMMIT")
                finally:
                    cursor.close()
        except Exception:
            self._held = None  # broken, perhaps: the next flush opens another
            with contextlib.suppress(Exception):
                connection.invalidate()
            raise


def settle(writer: Writer | None = None) -> None:
    """Wait until every process has written the entries of the calls it answered before
    now (this process's at once): call before reading or clearing the journal."""
    if writer is not None:
        writer.flush()
    time.sleep(SETTLE_SECONDS)


def _cut(value: str | None, length: int) -> str | None:
    return value[:length] if value else None


# --- reading it --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    operation: str | None = None
    terminal: str | None = None
    principal: str | None = None
    result_code: int | None = None
    since: datetime | None = None
    after_id: int | None = None
    injected: bool | None = None
    #: only requests with contract deviations (True), or only those without (False)
    deviations: bool | None = None


def _where(stmt: Select[Any], filters: Filters) -> Select[Any]:
    if filters.operation:
        stmt = stmt.where(JournalEntry.operation == filters.operation)
    if filters.terminal:
        stmt = stmt.where(JournalEntry.terminal_id == filters.terminal)
    if filters.principal:
        stmt = stmt.where(JournalEntry.principal_id == filters.principal)
    if filters.result_code is not None:
        stmt = stmt.where(JournalEntry.result_code == filters.result_code)
    if filters.since is not None:
        stmt = stmt.where(JournalEntry.at >= filters.since)
    if filters.after_id is not None:
        stmt = stmt.where(JournalEntry.id > filters.after_id)
    if filters.injected is not None:
        stmt = stmt.where(JournalEntry.injected.isnot(None) if filters.injected
                          else JournalEntry.injected.is_(None))
    if filters.deviations is not None:
        stmt = stmt.where(JournalEntry.deviations.isnot(None) if filters.deviations
                          else JournalEntry.deviations.is_(None))
    return stmt


def entries(session: Session, filters: Filters, limit: int = 100) -> list[JournalEntry]:
    """The newest `limit` entries that match, oldest first."""
    stmt = _where(select(JournalEntry), filters).order_by(JournalEntry.id.desc()).limit(limit)
    return list(reversed(session.scalars(stmt).all()))


def operations(session: Session) -> list[str]:
    """The operations the journal holds calls of, by name."""
    stmt = select(JournalEntry.operation).where(JournalEntry.operation.isnot(None)).distinct()
    return sorted(session.scalars(stmt))


def count(session: Session, filters: Filters) -> int:
    return session.scalar(_where(select(func.count(JournalEntry.id)), filters)) or 0


def clear(session: Session) -> int:
    return session.execute(delete(JournalEntry)).rowcount


def describe(row: JournalEntry) -> dict[str, Any]:
    return {
        "id": row.id, "at": row.at.isoformat(), "operation": row.operation, "path": row.path,
        "principal": {"type": row.principal_type, "id": row.principal_id,
                      "userId": row.user_id},
        "terminalId": row.terminal_id, "httpStatus": row.http_status,
        "resultCode": row.result_code, "fault": row.fault, "latencyMs": row.latency_ms,
        "injected": row.injected,
        "deviations": json.loads(row.deviations) if row.deviations else [],
        "request": row.request, "response": row.response,
    }


# --- the outgoing calls (notificationUrl) ------------------------------------------------------


def notification_attempts(session: Session, limit: int = 100) -> list[dict[str, Any]]:
    """Every notificationUrl call made, newest `limit`, oldest first."""
    rows = session.execute(
        select(NotificationAttempt, Notification)
        .join(Notification, Notification.id == NotificationAttempt.notification_id)
        .order_by(NotificationAttempt.id.desc()).limit(limit)
    ).all()
    out = []
    for attempt, notification in reversed(rows):
        answered = attempt.http_status is not None
        out.append({
            "id": attempt.id, "at": attempt.attempted_at.isoformat(),
            "invoiceReference": notification.invoice_reference,
            "url": notification.url, "method": attempt.method, "body": attempt.body,
            "status": attempt.http_status,
            "error": None if answered and 200 <= attempt.http_status < 300 else attempt.outcome,
            "outcome": attempt.outcome, "durationMs": attempt.duration_ms,
            "notificationStatus": notification.status,
        })
    return out

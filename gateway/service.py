"""The gateway as plain Python calls: one method per implemented operation.

Each call opens its own session (read or write), authenticates, and hands over to a domain
module. It returns plain values or raises `SeqrError`; the SOAP layer only translates.
"""

from gateway import terminals
from gateway.auth import Credentials, authenticate
from gateway.config import Settings
from gateway.parameters import Parameters
from gateway.periods import mark_transaction_period
from gateway.reports import requests as reports
from storage.database import Database


class Gateway:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    def register_terminal(
        self, creds: Credentials | None, external_terminal_id: str | None,
        password: str | None, name: str | None,
    ) -> str:
        with self.db.write() as session:
            principal = authenticate(session, creds)
            return terminals.register_terminal(
                session, principal, external_terminal_id, password, name
            )

    def unregister_terminal(self, creds: Credentials | None) -> None:
        with self.db.write() as session:
            terminals.unregister_terminal(session, authenticate(session, creds))

    def assign_seqr_id(self, creds: Credentials | None, seqr_id: str | None) -> None:
        with self.db.write() as session:
            terminals.assign_seqr_id(session, authenticate(session, creds), seqr_id)

    def mark_transaction_period(self, creds: Credentials | None, parameters: Parameters) -> str:
        with self.db.write() as session:
            principal = authenticate(session, creds)
            return mark_transaction_period(session, principal, parameters).transaction_period_id

    def execute_report(
        self, creds: Credentials | None, report_id: str | None, parameters: Parameters
    ) -> reports.ReportDocumentOut:
        """The document once ready; until then `ReportNotReadyError` (2), after queuing the job."""
        with self.db.read() as session:
            principal = authenticate(session, creds)
            scope = reports.resolve(session, principal, report_id, parameters)
            job = reports.find(session, scope)
            if job is not None:
                return reports.answer(session, job)
        with self.db.write() as session:
            job = reports.queue(session, scope, self.settings.report_delay)
        with self.db.read() as session:  # answered once the job is committed
            return reports.answer(session, job)

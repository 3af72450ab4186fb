"""The gateway as plain Python calls: one method per implemented operation.

Each call opens its own session (read or write), authenticates, and hands over to a domain
module. It returns plain values or raises `SeqrError`; the SOAP layer only translates.
"""

from collections.abc import Iterator

from gateway import passwords, payments, principals, terminals
from gateway.auth import Credentials, authenticate
from gateway.clock import Clock
from gateway.config import Settings
from gateway.invoices import InvoiceData
from gateway.parameters import Parameters
from gateway.periods import mark_transaction_period
from gateway.reports import requests as reports
from gateway.throttle import PasswordGuard
from storage import jobs
from storage.database import Database


class Gateway:
    def __init__(self, db: Database, settings: Settings, clock: Clock | None = None) -> None:
        self.db = db
        self.settings = settings
        self.rules = settings.payment_rules
        self.clock = clock or Clock(db)
        self.guard = PasswordGuard(settings.auth_max_failures, settings.auth_lockout_seconds,
                                   parallel_checks=max(1, settings.threads // 2))
        passwords.prepare()

    # --- terminals ---

    def register_terminal(
        self, creds: Credentials | None, external_terminal_id: str | None,
        password: str | None, name: str | None,
    ) -> str:
        with self.db.write() as session:
            principal = authenticate(session, creds, self.guard)
            return terminals.register_terminal(
                session, principal, external_terminal_id, password, name, self.clock.now()
            )

    def unregister_terminal(self, creds: Credentials | None) -> None:
        with self.db.write() as session:
            terminals.unregister_terminal(session, authenticate(session, creds, self.guard),
                                          self.clock.now())

    def assign_seqr_id(self, creds: Credentials | None, seqr_id: str | None) -> None:
        with self.db.write() as session:
            terminals.assign_seqr_id(session, authenticate(session, creds, self.guard), seqr_id)

    # --- principals ---

    def request_principal_information(
        self, creds: Credentials | None, requested: Credentials | None
    ) -> principals.PrincipalInfo:
        with self.db.read() as session:
            principal = authenticate(session, creds, self.guard)
            return principals.request_principal_information(session, principal, requested)

    def change_principal_password(
        self, creds: Credentials | None, requested: Credentials | None, new_password: str | None
    ) -> None:
        with self.db.write() as session:
            principal = authenticate(session, creds, self.guard)
            principals.change_principal_password(session, principal, requested, new_password)

    # --- payments ---

    def send_invoice(self, creds: Credentials | None,
                     invoice: InvoiceData | None) -> payments.SentInvoice:
        with self.db.write() as session:
            principal = authenticate(session, creds, self.guard)
            return payments.send_invoice(session, principal, invoice, self.rules, self.clock.now())

    def update_invoice(self, creds: Credentials | None, reference: str | None,
                       invoice: InvoiceData | None) -> None:
        with self.db.write() as session:
            principal = authenticate(session, creds, self.guard)
            payments.update_invoice(session, principal, reference, invoice, self.rules,
                                    self.clock.now())

    def get_payment_status(self, creds: Credentials | None,
                           reference: str | None) -> payments.PaymentStatus:
        """A plain poll only reads; one that settles or reverses a payment writes."""
        with self.db.read_rows() as connection:
            principal = authenticate(connection, creds, self.guard)
            status = payments.peek_payment_status(connection, principal, reference)
            if status is not None:
                return status
        with self.db.write() as session:
            return payments.get_payment_status(session, principal, reference, self.rules,
                                               self.clock.now())

    def cancel_invoice(self, creds: Credentials | None, reference: str | None) -> None:
        with self.db.write() as session:
            principal = authenticate(session, creds, self.guard)
            payments.cancel_invoice(session, principal, reference, self.rules, self.clock.now())

    def commit_reservation(self, creds: Credentials | None, reference: str | None) -> None:
        with self.db.write() as session:
            principal = authenticate(session, creds, self.guard)
            payments.commit_reservation(session, principal, reference, self.rules, self.clock.now())

    def submit_payment_receipt(
        self, creds: Credentials | None, ers_reference: str | None, mime_type: str | None,
        data: bytes | None, receipt_type: str | None,
    ) -> str:
        with self.db.write() as session:
            principal = authenticate(session, creds, self.guard)
            return payments.submit_payment_receipt(session, principal, ers_reference,
                                                   mime_type, data, receipt_type, self.rules,
                                                   self.clock.now())

    def refund_payment(self, creds: Credentials | None, ers_reference: str | None,
                       invoice: InvoiceData | None) -> str:
        with self.db.write() as session:
            principal = authenticate(session, creds, self.guard)
            return payments.refund_payment(session, principal, ers_reference, invoice,
                                           self.rules, self.clock.now())

    # --- reconciliation ---

    def mark_transaction_period(self, creds: Credentials | None, parameters: Parameters) -> str:
        with self.db.write() as session:
            principal = authenticate(session, creds, self.guard)
            return mark_transaction_period(session, principal, parameters,
                                           self.clock.now()).transaction_period_id

    def execute_report(
        self, creds: Credentials | None, report_id: str | None, parameters: Parameters
    ) -> reports.ReportDocumentOut:
        """The document once ready; until then `ReportNotReadyError` (2), after queuing it."""
        with self.db.read() as session:
            principal = authenticate(session, creds, self.guard)
            scope = reports.resolve(session, principal, report_id, parameters)
            job = reports.find(session, scope)
            if job is not None:
                return reports.answer(session, job, report_id)
        with self.db.write() as session:
            job = reports.queue(session, scope, self.settings.report_delay, self.clock.now())
        with self.db.read() as session:  # answered once the job is committed
            return reports.answer(session, job, report_id)

    def report_chunks(self, document: reports.ReportDocumentOut) -> Iterator[bytes]:
        """A ready document's bytes, a chunk at a time, in a read session of their own."""
        with self.db.read() as session:
            yield from jobs.document_chunks(session, document.job_id)

    def report_content(self, document: reports.ReportDocumentOut) -> bytes:
        """A ready document whole (the answer without streaming)."""
        return b"".join(self.report_chunks(document))

"""executeReport: who may see which period, and the job behind each answer."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.auth import Principal
from gateway.errors import ReportNotReadyError, SeqrError
from gateway.parameters import TERMINAL_ID, TRANSACTION_PERIOD_ID, Parameters
from gateway.reports.catalog import lookup
from gateway.reports.render import ReportScope
from storage import jobs
from storage.models import ReportJob, Terminal, TransactionPeriod
from wsdl.catalog import ReportSpec, answer_title
from wsdl.resultcodes import ResultCode

#: the public reason of a report that failed for good; never the error itself
RENDER_FAILED = "report rendering failed"


@dataclass(frozen=True)
class ReportDocumentOut:
    """A ready document: what the answer says of it; its bytes are read apart, a chunk at a
    time (`storage.jobs.document_chunks`), so that no answer needs the document whole."""

    title: str
    mime_type: str
    job_id: int
    size: int


def resolve(session: Session, principal: Principal, report_id: str | None,
            parameters: Parameters) -> ReportScope:
    """The report, period and terminal a request names, after every check."""
    spec = lookup(report_id)
    period_id = parameters.get(TRANSACTION_PERIOD_ID)
    if period_id is None:
        raise SeqrError(ResultCode.INVALID_ERS_REFERENCE, "parameter transactionPeriodId missing")
    period = session.scalar(
        select(TransactionPeriod).where(TransactionPeriod.public_id == period_id)
    )
    if period is None:
        raise SeqrError(ResultCode.INVALID_ERS_REFERENCE, f"no transaction period {period_id}")
    if period.reseller_id != principal.reseller_id:
        raise SeqrError(ResultCode.ACCESS_DENIED, f"transaction period {period_id} is not yours")
    terminal_id = terminal_of(session, spec, period, parameters.get(TERMINAL_ID))
    if principal.is_terminal and principal.terminal_id not in (terminal_id, period.terminal_id):
        raise SeqrError(
            ResultCode.ACCESS_DENIED, "a terminal may fetch only the reports of its own periods"
        )
    return ReportScope(spec, period, terminal_id)


def terminal_of(session: Session, spec: ReportSpec, period: TransactionPeriod,
                 requested: str | None) -> str | None:
    """The terminal a report is about: its period's, or the TERMINALID parameter's."""
    if requested is not None:
        if period.terminal_id is not None and requested != period.terminal_id:
            raise SeqrError(
                ResultCode.INVALID_ERS_REFERENCE,
                f"transaction period {period.public_id} is not a period of terminal {requested}",
            )
        terminal = session.get(Terminal, requested)
        if terminal is None:
            raise SeqrError(ResultCode.INVALID_ERS_REFERENCE, f"no terminal {requested}")
        if terminal.reseller_id != period.reseller_id:
            raise SeqrError(ResultCode.ACCESS_DENIED, f"terminal {requested} is not yours")
    if not spec.per_terminal:
        return None
    terminal_id = requested or period.terminal_id
    if terminal_id is None:
        raise SeqrError(
            ResultCode.REJECTED_BUSINESS_LOGIC,
            f"{spec.report_id} is a terminal report: pass the TERMINALID parameter",
        )
    return terminal_id


def answer(session: Session, job: ReportJob, report_id: str | None = None) -> ReportDocumentOut:
    """The stored document, titled for the `reportId` asked (`wsdl.catalog.answer_title`), or
    why there is none yet (2) or ever (90, a short public reason)."""
    if job.status == ReportJob.DONE:
        document = jobs.document_of(session, job.id)
        assert document is not None
        title = document.title
        if report_id is not None:
            period = session.get(TransactionPeriod, job.period_id)
            assert period is not None and period.public_id is not None
            title = answer_title(report_id, lookup(report_id), period.public_id)
        return ReportDocumentOut(title, document.mime_type, job.id, document.size)
    if job.status == ReportJob.FAILED:
        # the reason (job.last_error) is for the operator: the log, /metrics, the database
        raise SeqrError(ResultCode.SYSTEM_ERROR, RENDER_FAILED)
    raise ReportNotReadyError(f"{job.report_id} is being generated; ask again in a few seconds")


def find(session: Session, scope: ReportScope) -> ReportJob | None:
    return jobs.find_job(
        session, jobs.job_key(scope.spec.report_id, scope.period.id, scope.terminal_id)
    )


def queue(session: Session, scope: ReportScope, report_delay: float,
          now: datetime) -> ReportJob:
    not_before: datetime = now + timedelta(seconds=report_delay)
    return jobs.enqueue(
        session, scope.spec.report_id, scope.period.id, scope.terminal_id, not_before
    )

"""The one exception the domain modules raise: a SEQR result code with a human detail."""

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from wsdl.resultcodes import ResultCode

#: a resultDescription's detail is cut here: a megabyte of a client's value is not echoed
MAX_DETAIL = 300


class SeqrError(Exception):
    """A business answer other than SUCCESS; the SOAP layer makes it a response, not a fault."""

    def __init__(self, code: ResultCode, detail: str | None = None) -> None:
        if detail is not None and len(detail) > MAX_DETAIL:  # it may quote a client's value
            detail = detail[:MAX_DETAIL] + "..."
        super().__init__(code.describe(detail))
        self.code = code
        self.detail = detail

    @property
    def description(self) -> str:
        return self.code.describe(self.detail)


def database_error_code(error: DBAPIError) -> ResultCode:
    """Busy (93) while the database is locked, unavailable (94) while it cannot be reached,
    90 for anything else it refused."""
    if "locked" in str(error.orig).lower():
        return ResultCode.SYSTEM_BUSY
    if isinstance(error, OperationalError | InterfaceError) or error.connection_invalidated:
        return ResultCode.SERVICE_UNAVAILABLE
    return ResultCode.SYSTEM_ERROR


class ReportNotReadyError(SeqrError):
    def __init__(self, detail: str | None = None) -> None:
        super().__init__(ResultCode.REPORT_NOT_READY, detail)

"""The one exception the domain modules raise: a SEQR result code with a human detail."""

from gateway.resultcodes import ResultCode


class SeqrError(Exception):
    """A business answer other than SUCCESS; the SOAP layer makes it a response, not a fault."""

    def __init__(self, code: ResultCode, detail: str | None = None) -> None:
        super().__init__(code.describe(detail))
        self.code = code
        self.detail = detail

    @property
    def description(self) -> str:
        return self.code.describe(self.detail)


class ReportNotReadyError(SeqrError):
    def __init__(self, detail: str | None = None) -> None:
        super().__init__(ResultCode.REPORT_NOT_READY, detail)

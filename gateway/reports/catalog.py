"""The report a register asks for: the contract's catalog (`wsdl.catalog`) and its result code."""

from gateway.errors import SeqrError
from wsdl.catalog import ReportSpec, find_report
from wsdl.resultcodes import ResultCode


def lookup(raw_report_id: str | None) -> ReportSpec:
    """`Reconciliation/STD_RECON_003.xml`, `STD_RECON_003` or `Reconciliation/Shop.xml` (001)."""
    spec = find_report(raw_report_id)
    if spec is None:
        text = (raw_report_id or "").strip()
        raise SeqrError(ResultCode.UNSUPPORTED_OPERATION, f"unknown report id {text!r}")
    return spec

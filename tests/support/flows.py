"""Helpers for end-to-end flows: polling executeReport as a register does."""

import base64
import time
from collections.abc import Callable
from typing import Any

from lxml import etree

from wsdl import report_schema

REPORT_NOT_READY = 2


def poll_report(call: Callable[[], Any], timeout: float = 20.0, interval: float = 0.2) -> Any:
    """Call executeReport until it stops answering REPORT_NOT_READY; the first answer must be 2."""
    first = call()
    assert first.resultCode == REPORT_NOT_READY, (first.resultCode, first.resultDescription)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(interval)
        answer = call()
        if answer.resultCode != REPORT_NOT_READY:
            return answer
    raise AssertionError("report not ready in time")


def report_document(answer: Any, report_id: str, period_id: str,
                    title: str | None = None) -> Any:
    """The report of a SUCCESS answer, checked against its XSD; its root element. Its title
    is `STD_RECON_00N_<period>.xml`, or `title` when given (empty for Reconciliation/Shop.xml,
    as the manual's sample shows)."""
    assert answer.resultCode == 0, answer.resultDescription
    report = answer.report
    expected = f"{report_id}_{period_id}.xml" if title is None else title
    assert (report.title or "") == expected, report.title
    content = report.content
    if isinstance(content, str):  # suds leaves base64Binary encoded
        content = base64.b64decode(content)
    assert content == report.contentString.encode("utf-8")
    assert content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = etree.fromstring(content)
    report_schema(report_id).assertValid(root)
    assert root.findtext("Meta/TransactionPeriodId") == period_id
    return root

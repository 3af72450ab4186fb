"""When the database cannot be reached: /health says so, SOAP answers 94, nothing crashes."""

import json
from pathlib import Path

from gateway.config import Settings
from gateway.wire.app import GatewayApp
from storage.database import Database
from tests.support.envelopes import context_xml, envelope, parse_response, text_of
from tests.support.servers import InProcess


def _unreachable(tmp_path: Path) -> InProcess:
    url = f"sqlite:///{tmp_path / 'no-such-dir' / 'gone.sqlite3'}"
    return InProcess(GatewayApp(Database(url), Settings(database_url=url)))


def test_health_reports_an_unreachable_database(tmp_path: Path) -> None:
    status, body = _unreachable(tmp_path).request("GET", "/health")
    assert status == 503
    report = json.loads(body)
    assert report == {"status": "error", "database": "unreachable"}  # the why is in the log


def test_soap_answers_service_unavailable_not_a_crash(tmp_path: Path) -> None:
    gateway = _unreachable(tmp_path)
    status, body = gateway.post(envelope("markTransactionPeriod", context_xml("shop-1")))
    assert status == 200
    ret = parse_response(body)
    assert text_of(ret, "resultCode") == "94"
    assert text_of(ret, "resultDescription").startswith("SERVICE_UNAVAILABLE")
    status, body = gateway.post(envelope("benchmarkingNop", ""))
    assert status == 200 and text_of(parse_response(body), "resultCode") == "0"

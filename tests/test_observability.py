"""GET /metrics and GET /health as an operator reads them, and report worker processes."""

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.envelopes import context_xml, envelope, parse_response
from tests.support.servers import GatewayServer, make_shop

REPORT = "Reconciliation/STD_RECON_001.xml"


def scrape(server: GatewayServer) -> dict[tuple[str, tuple], float]:
    answer = requests.get(server.base + "/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(metrics: dict, name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def code_of(response: requests.Response) -> str | None:
    return parse_response(response.content).findtext("resultCode")


def mark(server: GatewayServer, reseller_id: str, password: str) -> requests.Response:
    return server.post(envelope("markTransactionPeriod", context_xml(reseller_id,
                                                                     password=password)))


def ask_report(server: GatewayServer, shop, period: str) -> str | None:
    inner = (context_xml(shop.reseller_id, password=shop.password)
             + f"<reportId>{REPORT}</reportId><language>en</language><parameters><parameter>"
             f"<entry><key>transactionPeriodId</key><value>{period}</value></entry>"
             "</parameter></parameters>")
    return code_of(server.post(envelope("executeReport", inner)))


@pytest.fixture
def two_process_server(tmp_path: Path) -> Iterator[GatewayServer]:
    server = GatewayServer(tmp_path, "--workers", "2", "--no-worker").start()
    yield server
    server.stop()


def test_metrics_count_every_operation_by_result_code_across_workers(
    two_process_server: GatewayServer,
) -> None:
    server = two_process_server
    shop = make_shop(server.db)
    before = scrape(server)
    for _ in range(10):
        assert code_of(mark(server, shop.reseller_id, shop.password)) == "0"
    for _ in range(3):
        assert code_of(mark(server, shop.reseller_id, "wrong")) == "20"
    for _ in range(2):
        assert server.post("<not-xml").status_code == 500
    own = context_xml(shop.reseller_id, password=shop.password)
    unknown = envelope("markTransactionPeriod", own + "<note>end of day</note>")
    for _ in range(4):  # accepted as the real service did, and counted
        assert code_of(server.post(unknown)) == "0"
    after = scrape(server)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("seqr_soap_requests_total", operation="markTransactionPeriod",
                 result_code="0") == 14
    assert delta("seqr_soap_requests_total", operation="markTransactionPeriod",
                 result_code="20") == 3
    assert delta("seqr_soap_request_duration_seconds_count",
                 operation="markTransactionPeriod") == 17
    assert delta("seqr_soap_faults_total", fault_code="Client") == 2
    assert delta("seqr_soap_deviations_total", kind="unknown-element") == 4


def test_queue_depth_oldest_job_and_render_durations(two_process_server: GatewayServer) -> None:
    """No report worker at first: the job waits, /health and /metrics say so; then a worker
    process with --concurrency 2 renders it, and both say that too."""
    server = two_process_server
    shop = make_shop(server.db)
    period = parse_response(mark(server, shop.reseller_id, shop.password).content
                            ).findtext("transactionPeriodId")
    assert ask_report(server, shop, period) == "2"
    time.sleep(0.3)
    health = requests.get(server.base + "/health", timeout=10).json()
    assert health["status"] == "ok" and health["report_jobs_waiting"] == 1
    assert health["oldest_waiting_job_age_seconds"] >= 0.3
    waiting = scrape(server)
    assert value(waiting, "seqr_report_jobs", status="PENDING") == 1
    assert value(waiting, "seqr_report_oldest_pending_job_age_seconds") >= 0.3

    worker = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli.main", "worker", "--database-url", server.db_url,
         "--report-delay", "0", "--concurrency", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while ask_report(server, shop, period) == "2":
            assert time.monotonic() < deadline, "the worker process rendered nothing"
            time.sleep(0.2)
        done = scrape(server)
        assert value(done, "seqr_report_jobs", status="PENDING") == 0
        assert value(done, "seqr_report_jobs", status="DONE") == 1
        assert value(done, "seqr_report_renders_total", report_id="STD_RECON_001") == 1
        assert value(done, "seqr_report_render_seconds_total", report_id="STD_RECON_001") > 0
        assert value(done, "seqr_report_oldest_pending_job_age_seconds") == 0
        health = requests.get(server.base + "/health", timeout=10).json()
        assert health["report_jobs_waiting"] == 0
        worker.terminate()  # SIGTERM: every worker thread finishes, the process exits cleanly
        assert worker.wait(15) == 0
    finally:
        if worker.poll() is None:
            worker.kill()


def test_a_worker_process_renders_several_reports_at_once(tmp_path: Path) -> None:
    server = GatewayServer(tmp_path, "--no-worker").start()
    worker = None
    try:
        shop = make_shop(server.db)
        periods = [parse_response(mark(server, shop.reseller_id, shop.password).content
                                  ).findtext("transactionPeriodId") for _ in range(6)]
        assert all(ask_report(server, shop, p) == "2" for p in periods)
        worker = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli.main", "worker", "--database-url", server.db_url,
             "--report-delay", "0", "--concurrency", "3"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        pending = set(periods)
        while pending:
            assert time.monotonic() < deadline, f"not rendered: {pending}"
            pending = {p for p in pending if ask_report(server, shop, p) == "2"}
            time.sleep(0.2)
        assert value(scrape(server), "seqr_report_jobs", status="DONE") == 6
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(15)
        server.stop()

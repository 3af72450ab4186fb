"""Prometheus metrics at GET /metrics.

Per process (aggregated over gunicorn's workers through prometheus-client's multiprocess
mode when PROMETHEUS_MULTIPROC_DIR is set, as `serve` does): SOAP operations answered by
operation and resultCode, their latency, faults, and contract deviations by kind. From
the database at scrape time, so that every report worker process counts: report jobs by
status, the age of the oldest pending one, and renders with their durations per report.
"""

import collections
import os
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from storage.database import Database
from storage.jobs import error_kind, waiting_jobs
from storage.models import ReportJob

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

REQUESTS = Counter(
    "seqr_soap_requests", "SOAP operations answered, by operation and resultCode",
    ["operation", "result_code"],
)
LATENCY = Histogram(
    "seqr_soap_request_duration_seconds", "Time to answer a SOAP operation", ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
FAULTS = Counter("seqr_soap_faults", "Requests refused with a SOAP fault", ["fault_code"])
ERRORS = Counter(
    "seqr_internal_errors", "Unexpected errors answered 90/93/94 or a Server fault, by kind "
    "(the error itself is in the log, never in the answer)", ["error"],
)

DEVIATIONS = Counter(
    "seqr_soap_deviations",
    "Ways requests departed from the WSDL that the gateway accepted (or refused under "
    "--strict), by kind", ["kind"],
)


def observe(operation: str, result_code: int, seconds: float,
            deviations: Iterable[Any] = ()) -> None:
    """An answered operation: its resultCode, its time, and its request's deviations."""
    REQUESTS.labels(operation, str(result_code)).inc()
    LATENCY.labels(operation).observe(seconds)
    count_deviations(deviations)


def count_fault(fault_code: str, deviations: Iterable[Any] = ()) -> None:
    FAULTS.labels(fault_code).inc()
    count_deviations(deviations)


def count_deviations(deviations: Iterable[Any]) -> None:
    for deviation in deviations:
        DEVIATIONS.labels(deviation.kind).inc()


def count_error(kind: str) -> None:
    ERRORS.labels(kind).inc()


class ReportQueueCollector(Collector):
    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Any]:
        jobs = GaugeMetricFamily("seqr_report_jobs", "Report jobs by status", labels=["status"])
        oldest = GaugeMetricFamily(
            "seqr_report_oldest_pending_job_age_seconds",
            "Age of the oldest report job not yet rendered (0 when none waits)",
        )
        renders = CounterMetricFamily(
            "seqr_report_renders", "Report documents rendered", labels=["report_id"])
        seconds = CounterMetricFamily(
            "seqr_report_render_seconds", "Time spent rendering report documents",
            labels=["report_id"])
        failures = CounterMetricFamily(
            "seqr_report_failures", "Report jobs that failed for good (answered 90), by "
            "report and the kind of error (its text is in the log)",
            labels=["report_id", "error"])
        with self.db.read() as session:
            failed = session.execute(
                select(ReportJob.report_id, ReportJob.last_error)
                .where(ReportJob.status == ReportJob.FAILED)
            ).all()
            counts = dict(session.execute(
                select(ReportJob.status, func.count()).group_by(ReportJob.status)).all())
            _, oldest_age = waiting_jobs(session)
            done = session.execute(
                select(ReportJob.report_id, func.count(), func.sum(ReportJob.render_seconds))
                .where(ReportJob.status == ReportJob.DONE).group_by(ReportJob.report_id)
            ).all()
        for status in (ReportJob.PENDING, ReportJob.RUNNING, ReportJob.DONE, ReportJob.FAILED):
            jobs.add_metric([status], counts.get(status, 0))
        oldest.add_metric([], oldest_age)
        for report_id, count, total in done:
            renders.add_metric([report_id], count)
            seconds.add_metric([report_id], float(total or 0))
        kinds = collections.Counter((report_id, error_kind(error)) for report_id, error in failed)
        for (report_id, kind), count in sorted(kinds.items()):
            failures.add_metric([report_id, kind], count)
        yield from (jobs, oldest, renders, seconds, failures)


class _ThisProcess(Collector):
    def collect(self) -> Iterator[Any]:
        yield from REGISTRY.collect()


def exposition(db: Database) -> bytes:
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(ReportQueueCollector(db))
    return generate_latest(registry)


def process_exited(pid: int) -> None:
    """gunicorn's child_exit: forget a dead worker's live gauges (counters stay summed)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)

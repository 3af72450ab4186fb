"""Real processes: a separate report worker, restarts, the CLI's seeding and add-reseller."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import zeep

from client import BINDING
from storage.database import Database
from tests.support.databases import new_database_url
from tests.support.envelopes import SOAP_PATH
from tests.support.flows import poll_report
from tests.support.official import OFFICIAL_WSDL
from tests.support.servers import GatewayServer, free_port, make_shop, reseller_context


def deployable_database_url(tmp_path: Path, name: str) -> str:
    """A new database as a deployment has it: the embedded SQLite default as it comes (it
    migrates itself), any other migrated beforehand with `seqr-gateway migrate`."""
    db_url = new_database_url(tmp_path, name)
    if not db_url.startswith("sqlite"):
        Database(db_url).migrate()
    return db_url


def _params(**entries: str) -> dict:
    return {"parameter": {"entry": [{"key": k, "value": v} for k, v in entries.items()]}}


def _soap(server: GatewayServer):
    return zeep.Client(str(OFFICIAL_WSDL)).create_service(BINDING, server.endpoint)


def test_reports_come_from_a_separate_worker_process_and_survive_restarts(tmp_path: Path) -> None:
    gateway = GatewayServer(tmp_path, "--no-worker").start()
    worker = None
    try:
        shop = make_shop(gateway.db)
        soap = _soap(gateway)
        period = soap.markTransactionPeriod(shop.context(), None).transactionPeriodId

        def ask():
            return soap.executeReport(shop.context(), "STD_RECON_001", "en",
                                      _params(transactionPeriodId=period))

        assert ask().resultCode == 2
        time.sleep(1.0)
        assert ask().resultCode == 2  # no worker anywhere: the job waits, nothing lost
        worker = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli.main", "worker", "--database-url", gateway.db_url,
             "--report-delay", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        answer = ask()
        while answer.resultCode == 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            answer = ask()
        assert answer.resultCode == 0, answer.resultDescription
        document = answer.report.contentString
        worker.terminate()
        assert worker.wait(10) == 0  # SIGTERM: a clean stop

        gateway.restart()  # a restart keeps every period, job and document
        soap = _soap(gateway)
        again = ask()
        assert again.resultCode == 0 and again.report.contentString == document
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        gateway.stop()


def _wait_healthy(base: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(base + "/health", timeout=1).status_code == 200:
                return
        except requests.RequestException:  # refused, or too slow while the worker boots
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def test_serve_seeds_a_demo_shop_and_prints_its_credentials(tmp_path: Path) -> None:
    """The README's first command, on a new database: demo shop seeded, credentials printed
    (again on a restart), and the default 2 s report delay before a report is ready."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    db_url = deployable_database_url(tmp_path, "demo")
    command = [sys.executable, "-m", "gateway.cli.main", "serve", "--port", str(port),
               "--database-url", db_url]
    demo = reseller_context("demo-shop", "9900", "demo-password")
    for _start in ("first", "restart"):
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        try:
            banner = []
            for line in process.stdout:
                banner.append(line)
                if "SEQR gateway on" in line:
                    break
            output = "".join(banner)
            assert "reseller id (initiatorPrincipalId/id): demo-shop" in output
            assert "password: demo-password" in output
            _wait_healthy(base)
            soap = zeep.Client(str(OFFICIAL_WSDL)).create_service(BINDING, base + SOAP_PATH)
            mark = soap.markTransactionPeriod(demo, None)
            assert mark.resultCode == 0
            started = time.monotonic()
            answer = poll_report(lambda soap=soap, mark=mark: soap.executeReport(
                demo, "STD_RECON_001", "en",
                _params(transactionPeriodId=mark.transactionPeriodId)))
            assert answer.resultCode == 0
            assert time.monotonic() - started >= 2.0
        finally:
            process.terminate()
            process.wait(15)


def test_add_reseller_creates_a_shop_that_can_log_in(tmp_path: Path) -> None:
    db_url = deployable_database_url(tmp_path, "cli")
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "add-reseller", "--database-url", db_url,
         "--id", "4711", "--user-id", "9900", "--password", "s3cret", "--name", "Store 111"],
        capture_output=True, text=True, env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    gateway = GatewayServer(tmp_path, db_url=db_url).start()
    try:
        soap = _soap(gateway)
        assert soap.markTransactionPeriod(
            reseller_context("4711", "9900", "s3cret"), None).resultCode == 0
        assert soap.markTransactionPeriod(
            reseller_context("4711", "9900", "wrong"), None).resultCode == 20
    finally:
        gateway.stop()


def _serve(db_url: str) -> subprocess.CompletedProcess[str]:
    """`serve` on a database whose schema it must refuse: it exits without serving."""
    return subprocess.run(  # the return code is asserted by the callers
        [sys.executable, "-m", "gateway.cli.main", "serve", "--port", str(free_port()),
         "--database-url", db_url, "--no-demo"],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_serve_refuses_a_schema_newer_than_it_knows(tmp_path: Path) -> None:
    from sqlalchemy import text


    db_url = new_database_url(tmp_path, "newer")
    db = Database(db_url)
    db.migrate()
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    result = _serve(db_url)
    assert result.returncode == 2
    assert "newer than this gateway knows" in result.stderr and "Traceback" not in result.stderr


def test_a_production_database_must_be_migrated_before_serving(
    tmp_path: Path, database_backend: str
) -> None:
    """On PostgreSQL `serve` refuses an empty schema and says to migrate; the embedded SQLite
    default migrates itself (the README's first command, checked above)."""
    if database_backend != "postgresql":
        pytest.skip("the embedded SQLite default migrates itself")
    db_url = new_database_url(tmp_path, "unmigrated")
    refused = _serve(db_url)
    assert refused.returncode == 2
    assert "seqr-gateway migrate" in refused.stderr and "Traceback" not in refused.stderr
    migrated = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "migrate", "--database-url", db_url],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert "schema at revision" in migrated.stdout
    gateway = GatewayServer(tmp_path, db_url=db_url).start()
    gateway.stop()


def test_migrations_build_exactly_the_models_schema(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from storage.models import Base

    db = Database(new_database_url(tmp_path, "migrated"))
    db.migrate()
    with db.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_report_chunks_are_lz4_compressed_on_postgresql(tmp_path: Path) -> None:
    """Storing a large document: lz4 where the server has it, whichever way the schema came."""
    from sqlalchemy import text

    from tests.support.databases import on_postgresql

    if not on_postgresql():
        pytest.skip("a PostgreSQL column setting")
    migrated, created = (Database(new_database_url(tmp_path, n)) for n in ("m", "c"))
    migrated.migrate()
    created.create_schema()
    for db in (migrated, created):
        with db.engine.connect() as connection:
            if not connection.execute(text(
                "SELECT 'lz4' = ANY(enumvals) FROM pg_settings "
                "WHERE name = 'default_toast_compression'"
            )).scalar():
                pytest.skip("this PostgreSQL has no lz4")
            method = connection.execute(text(
                "SELECT attcompression FROM pg_attribute "
                "WHERE attrelid = 'report_document_chunks'::regclass AND attname = 'data'"
            )).scalar()
        assert method == "l"
        db.dispose()

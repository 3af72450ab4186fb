"""The fixtures (a real gateway under gunicorn on a free port, shops, the in-process app);
their machinery lives in tests/support/, which test modules import from."""

from collections.abc import Iterator
from pathlib import Path

import pytest

# the helpers' plain `assert`s explain themselves as the tests' own do (before they are imported)
pytest.register_assert_rewrite("tests.support")

from gateway.config import Settings  # noqa: E402
from gateway.wire.app import create_app  # noqa: E402
from tests.support import isolation  # noqa: E402
from tests.support.databases import (  # noqa: E402
    POSTGRESQL,
    SKIP_REASON,
    SQLITE,
    Backends,
    new_database_url,
)
from tests.support.servers import GatewayServer, InProcess, Shop, make_shop  # noqa: E402

isolation.install()  # no test may read beside the repository (see tests/support/isolation.py)


def pytest_sessionstart(session: pytest.Session) -> None:
    """A PostgreSQL that is configured but cannot be reached fails the run; it is not skipped."""
    url = Backends.postgres_url()
    if url is None:
        return
    try:
        with Backends.admin().connect():
            pass
    except Exception as error:  # noqa: BLE001 - reported as the reason the run stops
        pytest.exit(f"SEQR_TEST_DATABASE_URL={url} is unreachable: {error}", returncode=3)


@pytest.fixture(autouse=True)
def _reads_stay_in_the_repository() -> Iterator[None]:
    """A read outside the repository fails the test that made it, even if the code that did
    it caught the refusal (a failure in the test's teardown: it reaches pytest-xdist's
    controller as any other does)."""
    before = len(isolation.refused)
    yield
    read = isolation.refused[before:]
    if read:
        pytest.fail(f"read outside the repository: {sorted(set(read))}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A read outside any test (collection, session fixtures) fails the run too."""
    if isolation.refused and exitstatus == 0:
        print(f"\nread outside the repository: {sorted(set(isolation.refused))}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `once` check what no database can change (the wire, the HTTP worker, the
    browser): they run on SQLite only, which keeps the suite's PostgreSQL half for storage."""
    once = pytest.mark.skip(reason="marked once: the database cannot change what it checks")
    for item in items:
        callspec = getattr(item, "callspec", None)
        if (item.get_closest_marker("once") is not None and callspec is not None
                and callspec.params.get("database_backend") == POSTGRESQL):
            item.add_marker(once)


@pytest.fixture(scope="session", params=[SQLITE, POSTGRESQL], autouse=True)
def database_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test runs on SQLite, and again on PostgreSQL when SEQR_TEST_DATABASE_URL is set."""
    if request.param == POSTGRESQL and Backends.postgres_url() is None:
        pytest.skip(SKIP_REASON)
    Backends.current = request.param
    yield request.param
    Backends.drop_all()
    Backends.current = SQLITE


@pytest.fixture(scope="session")
def server(database_backend: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    """One gateway for the session; tests keep apart by using shops of their own."""
    gateway = GatewayServer(tmp_path_factory.mktemp("gateway")).start()
    yield gateway
    gateway.stop()


@pytest.fixture
def shop(server: GatewayServer) -> Shop:
    return make_shop(server.db)


# --- in-process calls, for fast tests of rules that need no real server -------------------


@pytest.fixture
def inprocess(tmp_path: Path) -> InProcess:
    settings = Settings(database_url=new_database_url(tmp_path, "inproc"), report_delay=0)
    return InProcess(create_app(settings, create_schema=True))



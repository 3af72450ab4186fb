"""Which database the tests run on: SQLite always, PostgreSQL when one is configured.

Every test runs once per backend (the `database_backend` fixture in conftest). Each test
database is a new SQLite file, or on PostgreSQL a new schema of the configured database,
named in the URL (`options=-csearch_path=...`) so that server subprocesses use it too.
"""

import os
import uuid
from pathlib import Path
from typing import ClassVar

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

POSTGRES_ENV = "SEQR_TEST_DATABASE_URL"
SQLITE, POSTGRESQL = "sqlite", "postgresql"
SKIP_REASON = (
    f"PostgreSQL tests need {POSTGRES_ENV}, e.g. "
    "postgresql+psycopg://root@127.0.0.1:5432/test (.ci/run sets it)"
)


class Backends:
    current = SQLITE
    _admin: Engine | None = None
    _schemas: ClassVar[list[str]] = []

    @classmethod
    def postgres_url(cls) -> str | None:
        return os.environ.get(POSTGRES_ENV) or None

    @classmethod
    def admin(cls) -> Engine:
        if cls._admin is None:
            url = cls.postgres_url()
            assert url is not None
            cls._admin = create_engine(url, isolation_level="AUTOCOMMIT")
        return cls._admin

    @classmethod
    def drop_all(cls) -> None:
        if cls._admin is None:
            return
        with cls._admin.connect() as connection:
            for schema in cls._schemas:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        cls._schemas.clear()
        cls._admin.dispose()
        cls._admin = None


def new_database_url(tmp_path: Path, name: str = "db") -> str:
    """A new, empty database on the backend under test."""
    if Backends.current == SQLITE:
        return f"sqlite:///{tmp_path / (name + '.sqlite3')}"
    base = Backends.postgres_url()
    assert base is not None
    schema = f"seqr_test_{uuid.uuid4().hex[:12]}"
    with Backends.admin().connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    Backends._schemas.append(schema)
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def on_postgresql() -> bool:
    return Backends.current == POSTGRESQL

"""A throwaway database for one benchmark run, on SQLite or on a PostgreSQL server.

`scratch_database(url, directory, prefix)` yields the SQLAlchemy URL the run uses:

- no URL: a new SQLite file in `directory` (removed with it);
- an SQLite URL: that file, as given (left as it is afterwards);
- a PostgreSQL URL (`postgresql+psycopg://user@127.0.0.1:5432/postgres`): the server it
  names, not the database. A new database `<prefix>_<random>` is created there (the URL's
  database serves only to connect; its role needs CREATEDB) and dropped at the end, open
  connections and all (`DROP DATABASE ... WITH (FORCE)`, PostgreSQL >= 13). A role without
  CREATEDB gets a new schema in the URL's database instead, named in the URL as
  `options=-csearch_path=...` (so the gateway subprocesses use it too), dropped at the end.

`keep=True` leaves the database (or schema) and says so. Only what this module created is
ever dropped.
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ProgrammingError


def is_sqlite(url: str | None) -> bool:
    return url is None or make_url(url).get_backend_name() == "sqlite"


def safe(url: str) -> str:
    """The URL without its password, for printing."""
    return make_url(url).render_as_string(hide_password=True)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@contextmanager
def scratch_database(url: str | None, directory: Path, prefix: str, *,
                     keep: bool = False) -> Iterator[str]:
    if url is None:
        yield f"sqlite:///{directory / (prefix + '.sqlite3')}"
        return
    if is_sqlite(url):
        yield url
        return
    base = make_url(url)
    if base.get_backend_name() != "postgresql":
        raise SystemExit(f"{safe(url)}: only SQLite and PostgreSQL URLs are supported")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}".lower()
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    created: str | None = None
    try:
        with admin.connect() as connection:
            try:
                connection.execute(text(f"CREATE DATABASE {_quoted(name)}"))
                created = "database"
                scratch: URL = base.set(database=name)
            except ProgrammingError as error:  # no CREATEDB: a schema of the URL's database
                if "permission denied" not in str(error).lower():
                    raise
                connection.execute(text(f"CREATE SCHEMA {_quoted(name)}"))
                created = "schema"
                scratch = base.update_query_dict({"options": f"-csearch_path={name}"})
        yield scratch.render_as_string(hide_password=False)
    finally:
        if created is not None:
            if keep:
                print(f"kept PostgreSQL {created} {name} on {safe(url)}")
            else:
                with admin.connect() as connection:
                    if created == "database":
                        connection.execute(
                            text(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)"))
                    else:
                        connection.execute(text(f"DROP SCHEMA IF EXISTS {_quoted(name)} CASCADE"))
        admin.dispose()

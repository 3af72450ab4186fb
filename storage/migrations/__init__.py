"""Alembic migrations of the gateway's schema, and the calls that run and check them."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

HERE = Path(__file__).resolve().parent


def config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head() -> str:
    revision = ScriptDirectory.from_config(config("sqlite://")).get_current_head()
    assert revision is not None
    return revision


def known() -> set[str]:
    script = ScriptDirectory.from_config(config("sqlite://"))
    return {revision.revision for revision in script.walk_revisions()}


class SchemaOutOfDateError(Exception):
    pass


def check(engine: Engine, *, upgrade_if_behind: bool) -> None:
    """Make sure the schema is this gateway's: upgrade it if allowed, else say what to do."""
    at, newest = current(engine), head()
    if at == newest:
        return
    if at is not None and at not in known():
        raise SchemaOutOfDateError(
            f"the database schema is at revision {at}, newer than this gateway knows "
            f"({newest}): run a newer gateway"
        )
    if upgrade_if_behind:
        upgrade(engine)
        return
    raise SchemaOutOfDateError(
        f"the database schema is {'empty' if at is None else f'at revision {at}'}, this "
        f"gateway needs {newest}: run `seqr-gateway migrate --database-url ...` first"
    )


def current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Create or upgrade the schema to the newest revision."""
    cfg = config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


def stamp(engine: Engine) -> None:
    cfg = config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.stamp(cfg, "head")

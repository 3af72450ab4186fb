"""The request journal's bounds and its contract with the wire layer, on the WSGI app."""

import json
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Settings
from gateway.control import journal
from gateway.wire.app import create_app
from tests.support.databases import new_database_url
from tests.support.envelopes import envelope
from tests.support.servers import InProcess


def app_with(tmp_path: Path, **settings: Any) -> InProcess:
    return InProcess(create_app(Settings(database_url=new_database_url(tmp_path, "journal"),
                                         report_delay=0, **settings), create_schema=True))


def entries(app: InProcess) -> list[dict[str, Any]]:
    status, body = app.request("GET", "/admin/requests", query="limit=1000")
    assert status == 200
    return json.loads(body)  # type: ignore[no-any-return]


def test_the_journal_keeps_only_the_newest_entries(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal, "PRUNE_EVERY", 10)  # prune every 10th entry, not 100th
    app = app_with(tmp_path, journal_size=5)
    for calls in range(1, 41):
        assert app.post(envelope("benchmarkingNop", ""))[0] == 200
        if calls % 3 == 0:
            time.sleep(journal.FLUSH_SECONDS * 2)  # let the writer flush in batches of ~3
    kept = [e["id"] for e in entries(app)]
    assert kept == list(range(kept[0], 41))  # the newest, none missing
    assert 5 <= len(kept) < 5 + 10 + 3  # keep, and what came since the last prune


def test_the_wire_layers_deviations_are_stored_with_the_entry(tmp_path: Path) -> None:
    app = app_with(tmp_path)
    app.post(envelope("benchmarkingNop", ""))
    status, _ = app.request("POST", body=envelope("benchmarkingNop", "").encode(),
                            headers={"HTTP_SOAPACTION": '"urn:benchmarkingNop"'})
    assert status == 200
    plain, deviating = entries(app)
    assert plain["deviations"] == []
    [deviation] = deviating["deviations"]
    assert deviation["kind"] == "soap-action" and "urn:benchmarkingNop" in deviation["detail"]


def test_passwords_are_masked_in_any_prefix_and_spacing() -> None:
    body = (b'<ns:password xmlns:ns="x">s3cret</ns:password><newPassword >n3w</newPassword>'
            b"<passwordHint>kept</passwordHint><password/>")
    masked = journal.mask_passwords(body)
    assert "s3cret" not in masked and "n3w" not in masked
    assert masked.count("***") == 2 and "<passwordHint>kept</passwordHint>" in masked


def test_long_bodies_are_cut_and_still_masked() -> None:
    body = b"<password>s3cret</password>" + b"x" * (2 * journal.BODY_LIMIT)
    kept = journal.stored_body(body)
    assert kept.startswith("<password>***</password>xxx")
    assert kept.endswith(f"... [{len(body)} bytes, the first {journal.BODY_LIMIT} kept]")
    assert len(kept) < journal.BODY_LIMIT + 100


def test_on_a_sqlite_file_the_journal_is_kept_in_a_file_of_its_own(tmp_path: Path) -> None:
    """Beside `<file>` as `<file>-requests`, so that its commits touch nothing the gateway's
    writers and readers use; on PostgreSQL in the gateway's database. Either way the admin API
    reads, counts and resets it as before."""
    app = app_with(tmp_path)
    db = app.db
    kept_in = journal.database(db)
    if db.is_sqlite:
        assert kept_in.sqlite_file == f"{db.sqlite_file}-requests"
        assert Path(kept_in.sqlite_file).is_file()
    else:
        assert kept_in is db
    assert app.post(envelope("benchmarkingNop", ""))[0] == 200
    [entry] = entries(app)
    assert entry["operation"] == "benchmarkingNop"
    with db.read() as session:  # the gateway's own file holds none of it (on SQLite)
        in_gateway_file = journal.count(session, journal.Filters())
    assert in_gateway_file == (0 if db.is_sqlite else 1)
    status, body = app.request("GET", "/admin/state")
    assert status == 200 and json.loads(body)["journalEntries"] == 1
    status, body = app.request("POST", "/admin/reset", body=b"{}")
    assert status == 200 and json.loads(body)["deleted"]["journal"] == 1
    assert entries(app) == []

"""The six report documents, byte for byte, on fixed data: golden files in tests/data/reports/.

Two closed periods of one shop, every value fixed (ids, references, amounts, times):

- `small`: a dozen hand-made transactions whose cashiers need escaping (`&`, `<`, `>`, a
  carriage return, `]]>`, quotes, non-ASCII, an empty cashier, none at all), a shop id with
  an ampersand, amounts from 0.00001 to 99,999,999.99999. Its documents are kept whole
  (`small.<report>[.<backend>].xml`), so a difference shows as a diff.
- `large`: 4,321 random (seeded) transactions over five terminals, more than two of the
  renderer's batches. Its documents are kept as SHA-256 digests and sizes (`large.json`).

The files were made by the renderer before it was rewritten for speed; every later renderer
must produce the same bytes. Row order within a summary follows the database's ORDER BY,
and PostgreSQL sorts a NULL cashier last where SQLite sorts it first: where the backends
differ, the file name carries the backend. Regenerate (only on purpose, after a deliberate
change of the documents) with `python -m tests.test_report_golden [sqlite|postgresql]`.
"""

import hashlib
import io
import json
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select, update

from gateway import periods
from gateway.reports.render import ReportScope, render, xml_text
from storage.database import Database
from storage.models import (
    PeriodScope,
    Reseller,
    Terminal,
    TransactionPeriod,
)
from storage.money import Money, format_amount, format_units
from tests.support.databases import on_postgresql
from tests.support.domain import add_transactions, fresh_db
from wsdl.catalog import REPORTS

GOLDEN = Path(__file__).parent / "data" / "reports"
GENERATED_AT = datetime(2024, 3, 9, 17, 45, 12, tzinfo=UTC)
SHOP = "shop&co-1"
TERMINALS = [f"{k:x}" * 32 for k in range(10, 15)]  # "aaaa...", "bbbb...", ... (32 hex digits)
SMALL_PERIOD = "2024030917450000000000001"
SMALL_TILL_PERIOD = "2024030917450000000000002"
LARGE_PERIOD = "2024030917450000000000003"
LARGE_TILL_PERIOD = "2024030917450000000000004"
LARGE_ROWS = 4321

#: (terminal index, cashier, signed amount) of the small period, in commit order
SMALL_ROWS = [
    (0, "anna", "93.31"),
    (0, "anna", "0.10"),
    (0, "bob", "-20.00"),
    (1, "bob", "1234.5"),
    (1, None, "7.77"),
    (1, "Ånna & <Co>", "0.01"),
    (1, "Ånna & <Co>", "-0.01"),
    (0, "x]]>y", "0.00001"),
    (0, "cr\rlf\ntab\t\"q\" 'a'", "99999999.99999"),
    (1, "", "5"),
    (0, "😀 emoji", "-3.14159"),
    (1, None, "-7.77"),
]
#: the reports of each period and the terminal each is asked for
CASES = [
    ("STD_RECON_001", "shop", None),
    ("STD_RECON_002", "shop", None),
    ("STD_RECON_003", "shop", None),
    ("STD_RECON_004", "shop", None),
    ("STD_RECON_006", "shop", 1),  # a terminal report of the shop period: filtered
    ("STD_RECON_007", "shop", 1),
    ("STD_RECON_006", "till", None),  # the terminal's own period
    ("STD_RECON_007", "till", None),
    ("STD_RECON_006", "till", 0),  # ... with TERMINALID given too
]


@dataclass(frozen=True)
class Seeded:
    db: Database
    periods: dict[str, TransactionPeriod]


def _case_name(report_id: str, which: str, terminal: int | None) -> str:
    suffix = "" if terminal is None else f".t{terminal}"
    return f"{report_id}.{which}{suffix}"


def seed(db: Database) -> Seeded:
    """The shop, five terminals, and the small then the large period of the shop (each
    closed), with terminal 0's periods closed alongside."""
    with db.write() as session:
        session.add(Reseller(id=SHOP, name="Shop & Co"))
        session.flush()
        periods.open_scope(session, SHOP)
        for terminal_id in TERMINALS:
            session.add(Terminal(id=terminal_id, reseller_id=SHOP, name=terminal_id,
                                 password_hash="-"))
            session.flush()
            periods.open_scope(session, SHOP, terminal_id)
    at = datetime(2024, 3, 9, 9, 0, tzinfo=UTC)
    small = [(TERMINALS[t], cashier, Decimal(amount)) for t, cashier, amount in SMALL_ROWS]
    add_transactions(db, SHOP, small, at, 1)
    _close(db, SMALL_PERIOD, SMALL_TILL_PERIOD)
    rng = random.Random(20240309)
    cashiers = [None, "anna", "bob", "cecilia", "Ånna & <Co>", "d", "e-1", "f"]
    large = []
    for _ in range(LARGE_ROWS):
        amount = Decimal(rng.randint(1, 10**9)).scaleb(-rng.choice((2, 2, 2, 5)))
        large.append((rng.choice(TERMINALS), rng.choice(cashiers),
                      -amount if rng.random() < 0.07 else amount))
    add_transactions(db, SHOP, large, at + timedelta(hours=1), 1000)
    _close(db, LARGE_PERIOD, LARGE_TILL_PERIOD)
    with db.read() as session:
        found = {
            p.public_id: p for p in session.scalars(
                select(TransactionPeriod).where(TransactionPeriod.public_id.is_not(None)))
        }
    return Seeded(db, {
        "small.shop": found[SMALL_PERIOD], "small.till": found[SMALL_TILL_PERIOD],
        "large.shop": found[LARGE_PERIOD], "large.till": found[LARGE_TILL_PERIOD],
    })


def _close(db: Database, shop_public_id: str, till_public_id: str) -> None:
    """Close the shop's and terminal 0's open periods, naming them with fixed ids."""
    for key, public_id in ((PeriodScope.shop_key(SHOP), shop_public_id),
                           (PeriodScope.terminal_key(TERMINALS[0]), till_public_id)):
        with db.write() as session:
            closed = periods.close_open_period(session, key)
            session.execute(
                update(TransactionPeriod)
                .where(TransactionPeriod.public_id == closed.transaction_period_id)
                .values(public_id=public_id)
            )


def render_document(seeded: Seeded, report_id: str, which: str, terminal: int | None) -> bytes:
    period = seeded.periods[which]
    terminal_id = None if terminal is None else TERMINALS[terminal]
    out = io.BytesIO()
    with seeded.db.read() as session:
        render(session, ReportScope(REPORTS[report_id], period, terminal_id), GENERATED_AT,
               out)
    return out.getvalue()


def _golden_file(name: str, backend: str) -> Path:
    """The backend's own file where there is one, else the shared one."""
    own = GOLDEN / f"{name}.{backend}.xml"
    return own if own.exists() else GOLDEN / f"{name}.xml"


@pytest.fixture(scope="module")
def seeded(database_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """One seeded database per backend (hence `database_backend`: a new one when it changes)."""
    seeded = seed(fresh_db(tmp_path_factory.mktemp("golden")))
    yield seeded
    seeded.db.dispose()


def _backend() -> str:
    return "postgresql" if on_postgresql() else "sqlite"


@pytest.mark.parametrize("report_id, which, terminal", CASES)
def test_small_period_documents_are_the_golden_ones(seeded: Seeded, report_id: str, which: str,
                                                   terminal: int | None) -> None:
    name = f"small.{_case_name(report_id, which, terminal)}"
    document = render_document(seeded, report_id, f"small.{which}", terminal)
    assert document == _golden_file(name, _backend()).read_bytes()


def test_large_period_documents_are_the_golden_ones(seeded: Seeded) -> None:
    golden = json.loads((GOLDEN / "large.json").read_text())[_backend()]
    for report_id, which, terminal in CASES:
        name = _case_name(report_id, which, terminal)
        document = render_document(seeded, report_id, f"large.{which}", terminal)
        assert {"sha256": hashlib.sha256(document).hexdigest(), "bytes": len(document)} == (
            golden[name]), name


def write_golden(backend: str) -> None:
    """Render every case with the current renderer and store it as the golden files."""
    from tests.support.databases import POSTGRESQL, Backends

    if backend == "postgresql":
        Backends.current = POSTGRESQL
    import tempfile

    GOLDEN.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        seeded = seed(fresh_db(Path(tmp)))
        digests = {}
        for report_id, which, terminal in CASES:
            name = _case_name(report_id, which, terminal)
            small = render_document(seeded, report_id, f"small.{which}", terminal)
            shared = GOLDEN / f"small.{name}.xml"
            if backend == "sqlite":
                shared.write_bytes(small)
            elif small != shared.read_bytes():
                (GOLDEN / f"small.{name}.{backend}.xml").write_bytes(small)
            large = render_document(seeded, report_id, f"large.{which}", terminal)
            digests[name] = {"sha256": hashlib.sha256(large).hexdigest(), "bytes": len(large)}
        seeded.db.dispose()
    index = GOLDEN / "large.json"
    everything = json.loads(index.read_text()) if index.exists() else {}
    everything[backend] = digests
    index.write_text(json.dumps(everything, indent=1, sort_keys=True) + "\n")
    Backends.drop_all()


if __name__ == "__main__":
    write_golden(sys.argv[1] if len(sys.argv) > 1 else "sqlite")


AWKWARD = ["", "plain", "a&b", "<Co>", "x]]>y", "cr\rlf\n\ttab", "\"q\" 'a'", "Ånna 😀",
           "&amp;", "\x7f\x85\u2028", "\U0010ffff", "a\x00b", "\x01", "\x08\x0b\x0c",
           "\x1f", "\ufffe", "\uffff", "ok\x0e"]


@pytest.mark.parametrize("value", AWKWARD)
def test_text_is_escaped_and_refused_as_lxml_does(value: str) -> None:
    """The renderer's text is lxml's serialisation of the same element, or lxml's error."""
    element = etree.Element("CashierId")
    try:
        element.text = value
    except ValueError as lxml_error:
        with pytest.raises(ValueError) as ours:
            xml_text(value)
        assert str(ours.value) == str(lxml_error)
        return
    written = etree.tostring(element, encoding="UTF-8", xml_declaration=False)
    if value == "":
        written = b"<CashierId></CashierId>"  # lxml writes <CashierId/> for no text at all
    assert f"<CashierId>{xml_text(value)}</CashierId>".encode() == written


def test_stored_units_are_formatted_as_the_decimal_amount() -> None:
    rng = random.Random(7)
    values = [0, 1, -1, 99_999, -99_999, 100_000, -100_000, 2**63 - 1, -(2**63)]
    values += [rng.randint(-10**15, 10**15) for _ in range(5000)]
    money = Money()
    for units in values:
        assert format_units(units) == format_amount(money.process_result_value(units, None))

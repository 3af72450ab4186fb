"""NarrowQuery (the poll's fast statements) reads what SQLAlchemy's execution reads."""

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import bindparam, select

from storage.database import NarrowQuery
from storage.models import Transaction
from tests.support.domain import add_transactions, fresh_db, new_shop, new_terminal

QUERY = (
    select(Transaction.ers_reference, Transaction.amount, Transaction.committed_at,
           Transaction.cashier_id, (Transaction.kind == Transaction.SALE).label("sale"))
    .where(Transaction.terminal_id == bindparam("terminal_id"))
    .order_by(Transaction.id)
)


def test_the_same_values_as_sqlalchemy_reads_them(tmp_path: Path) -> None:
    db = fresh_db(tmp_path)
    till = new_terminal(db, new_shop(db))
    add_transactions(db, "shop-1", [(till, None, Decimal("-0.01")),
                                    (till, "Å & <b>", Decimal("12345.67891"))],
                     datetime(2024, 3, 9, 23, 59, 59, tzinfo=UTC), 1)
    narrow = NarrowQuery(QUERY)
    with db.read() as session:
        expected = session.execute(QUERY, {"terminal_id": till}).first()
        from_session = narrow.first(session, terminal_id=till)
    with db.read_rows() as rows:
        from_rows = narrow.first(rows, terminal_id=till)
        missing = narrow.first(rows, terminal_id="no-such-terminal")
    assert expected is not None and missing is None
    assert tuple(from_session) == tuple(from_rows) == tuple(expected)
    assert from_rows.amount == Decimal("-0.01") and from_rows.sale is False
    assert from_rows.committed_at == datetime(2024, 3, 9, 23, 59, 59, tzinfo=UTC)
    db.dispose()

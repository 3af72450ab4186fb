"""Money columns: `Decimal` in Python, exact integers of 10**-5 units in the database.

SQLite has no exact decimal type, so amounts are stored scaled, and reports print the five
decimals SEQR prints. One amount fits a 64-bit integer (invoices stay below 10**12); a sum of
many may not, so sums use `money_sum`, which never overflows: PostgreSQL's SUM of a bigint
is an exact numeric, and on SQLite (whose SUM fails with "integer overflow" past 2**63) it
is an aggregate in Python integers, registered on every connection (`SQLITE_AGGREGATES`).
"""

from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction
from sqlalchemy.types import TypeDecorator

SCALE = 5
_QUANTUM = Decimal(1).scaleb(-SCALE)
_UNIT = 10**SCALE
_UNITS = f"%d.%0{SCALE}d"  # whole units, then the fraction on SCALE digits
_NEGATIVE_UNITS = "-" + _UNITS


class Money(TypeDecorator[Decimal]):
    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> int | None:
        if value is None:
            return None
        amount = Decimal(value)
        scaled = amount.scaleb(SCALE)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{amount} has more than {SCALE} decimals")
        return int(scaled)

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        if value is None:
            return None
        # an int, or from a sum: PostgreSQL's numeric, SQLite's exact_money_sum text
        return Decimal(int(value)).scaleb(-SCALE).quantize(_QUANTUM)


def format_amount(amount: Decimal) -> str:
    """`93.31` -> `93.31000`: the five-decimal form of the reports."""
    return str(Decimal(amount).quantize(_QUANTUM))


def format_units(units: int) -> str:
    """`format_amount` of an amount as stored (an integer of 10**-5 units): `9331000` ->
    `93.31000`. For documents of millions of rows, where making a Decimal per row costs
    more than the rest of the row."""
    if units < 0:
        return _NEGATIVE_UNITS % divmod(-units, _UNIT)
    return _UNITS % divmod(units, _UNIT)


class money_sum(GenericFunction[Decimal]):  # noqa: N801 (a SQL function, named as one)
    """SUM(amount) of a Money column or expression, exact however large it grows."""

    type = Money()
    name = "money_sum"
    inherit_cache = True


@compiles(money_sum)
def _sum(element: money_sum, compiler: Any, **kw: Any) -> str:
    return f"sum({compiler.process(element.clauses, **kw)})"


@compiles(money_sum, "sqlite")
def _sqlite_sum(element: money_sum, compiler: Any, **kw: Any) -> str:
    return f"exact_money_sum({compiler.process(element.clauses, **kw)})"


class _ExactSum:
    """SQLite aggregate: the sum in Python integers, handed back as text (SQLite's own
    integers stop at 2**63 - 1); Money reads it back exactly."""

    def __init__(self) -> None:
        self.total: int | None = None

    def step(self, value: Any) -> None:
        if value is not None:
            self.total = int(value) + (self.total or 0)

    def finalize(self) -> str | None:
        return None if self.total is None else str(self.total)


#: (name, number of arguments, class) for sqlite3's create_aggregate on every connection
SQLITE_AGGREGATES = (("exact_money_sum", 1, _ExactSum),)

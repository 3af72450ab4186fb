"""Money columns: `Decimal` in Python, exact integers of 10**-5 units in the database.

SQLite has no exact decimal type, so amounts are stored scaled; SUM() over them is exact on
every backend, and reports print the five decimals SEQR prints.
"""

from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy.types import TypeDecorator

SCALE = 5
_QUANTUM = Decimal(1).scaleb(-SCALE)


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
        return Decimal(int(value)).scaleb(-SCALE).quantize(_QUANTUM)


def format_amount(amount: Decimal) -> str:
    """`93.31` -> `93.31000`: the five-decimal form of the reports."""
    return str(Decimal(amount).quantize(_QUANTUM))

"""The `parameters` map of markTransactionPeriod and executeReport (`<entry><key/><value/>`)."""

from collections.abc import Iterable, Mapping

TERMINAL_ID = "TERMINALID"
TRANSACTION_PERIOD_ID = "transactionPeriodId"


class Parameters:
    """Keys are matched without regard to case; the last of repeated keys wins."""

    def __init__(self, entries: Iterable[tuple[str | None, str | None]] = ()) -> None:
        self._values: dict[str, str] = {}
        for key, value in entries:
            if key is not None and value is not None and value.strip():
                self._values[key.strip().lower()] = value.strip()

    @classmethod
    def of(cls, mapping: Mapping[str, str]) -> "Parameters":
        return cls(mapping.items())

    def get(self, key: str) -> str | None:
        return self._values.get(key.lower())

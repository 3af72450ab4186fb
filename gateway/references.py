"""Identifiers in the formats seen on the wire.

- ersReference / transactionPeriodId: 25 digits, `yyyyMMddHHmmssSSS` and 8 more digits.
- terminalId: 32 lowercase hex characters.
"""

import re
import uuid
from datetime import datetime

ERS_REFERENCE_RE = re.compile(r"^\d{25}$")
TERMINAL_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def ers_reference(at: datetime, sequence: int) -> str:
    """A 25-digit reference: the UTC timestamp to the millisecond, then `sequence` on 8 digits.

    `sequence` is a database-assigned number, so two references made in the same millisecond
    still differ (it wraps after 10**8, by then the timestamps differ).
    """
    stamp = at.strftime("%Y%m%d%H%M%S") + f"{at.microsecond // 1000:03d}"
    return stamp + f"{sequence % 10**8:08d}"


def new_terminal_id() -> str:
    return uuid.uuid4().hex

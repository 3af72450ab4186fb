"""Identifiers in the formats seen on the wire.

- ersReference / transactionPeriodId: 25 digits, `yyyyMMddHHmmssSSS` and 8 more digits.
- terminalId: 32 lowercase hex characters.
"""

import re
import uuid
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

from storage.models import ErsReferenceAllocation

ERS_REFERENCE_RE = re.compile(r"^\d{25}$")
TERMINAL_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def ers_reference(at: datetime, sequence: int) -> str:
    """A 25-digit reference: the UTC timestamp to the millisecond, then `sequence` on 8 digits.

    `sequence` is a database-assigned number, so two references made in the same millisecond
    still differ (it wraps after 10**8, by then the timestamps differ).
    """
    stamp = at.strftime("%Y%m%d%H%M%S") + f"{at.microsecond // 1000:03d}"
    return stamp + f"{sequence % 10**8:08d}"


_ALLOCATE = insert(ErsReferenceAllocation)


def allocate_reference(session: Session, at: datetime) -> str:
    """A new 25-digit reference stamped with `at`, unique among all the gateway gives out:
    payments, refunds and transaction periods draw from one sequence."""
    allocated = session.connection().execute(_ALLOCATE, {"allocated_at": at})
    return ers_reference(at, int(allocated.inserted_primary_key[0]))


def new_terminal_id() -> str:
    return uuid.uuid4().hex

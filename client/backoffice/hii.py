"""Hii Retail's `ReconciliationRecount` v1 event for a reconciled period.

The schema is Hii Retail's published JSON Schema (draft 2020-12) of
`hiiretail.contracts.reconciliations.ReconciliationRecount.v1`, copied unchanged into
`schemas/hii-reconciliation-recount-v1.json` from the project's seed document
`001_204e568784bed630.txt` ("Reconciliation recount format"). Every event made here is
checked against that copy before it is returned.

The SEQR tender is one `RecountTender` per currency: expected amount and quantity from the
register's journal (what the system accumulated), actual from SEQR (what was "counted");
`amountCorrection` and `quantityCorrection` are the deviation of the recount from the
previous count, actual minus expected. The tender is read-only (nobody counts it by hand).
"""

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from client.backoffice.period import DEFAULT_TENDER, Flow, Period, flows, iso_utc

SCHEMA_FILE = "hii-reconciliation-recount-v1.json"


@cache
def recount_schema() -> dict[str, Any]:
    """Hii Retail's ReconciliationRecount v1 JSON Schema (the project's copy)."""
    text = resources.files("client.backoffice").joinpath("schemas", SCHEMA_FILE).read_text(
        encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_recount(event: dict[str, Any]) -> None:
    """jsonschema.ValidationError unless `event` is a valid ReconciliationRecount v1
    (formats such as date-time checked too)."""
    jsonschema.Draft202012Validator(
        recount_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    ).validate(event)


def json_number(value: Decimal) -> int | float:
    """An amount as a JSON number, refusing to lose a digit on the way."""
    if value == value.to_integral_value():
        return int(value)
    number = float(value)
    if Decimal(repr(number)) != value:
        raise ValueError(f"{value} cannot be a JSON number without losing digits")
    return number


def recount_event(period: Period, *, tenant_id: str, business_unit_id: str | None = None,
                  tender_id: str = DEFAULT_TENDER, reconciliation_id: str | None = None,
                  recount_id: str | None = None, comment: str | None = None,
                  now: datetime | None = None) -> dict[str, Any]:
    """The ReconciliationRecount event of a reconciled `period`. `business_unit_id`
    defaults to the SEQR shop (the report's ResellerId); the ids are new UUIDs unless
    given; `correlationId` is the transactionPeriodId."""
    register = period.journal_side()
    if not tenant_id:
        raise ValueError("a Hii Retail event needs a tenantId")
    business_unit = business_unit_id or period.shop_id
    if not business_unit:
        raise ValueError("a Hii Retail event needs a businessUnitId")
    expected = flows(register, lambda t: t.currency)
    actual = flows(period.seqr, lambda t: t.currency)
    cashiers = {t.cashier_id for t in (*register, *period.seqr)}
    tenders = []
    for currency in period.currencies:
        want, got = expected.get(currency, Flow()), actual.get(currency, Flow())
        tenders.append({
            "tenderId": tender_id,
            "currencyId": currency,
            "isReadOnly": True,
            "expectedAmount": json_number(want.net),
            "actualAmount": json_number(got.net),
            "expectedQuantity": want.count,
            "actualQuantity": got.count,
            "amountCorrection": json_number(got.net - want.net),
            "quantityCorrection": got.count - want.count,
        })
    event: dict[str, Any] = {
        "tenantId": tenant_id,
        "businessUnitId": business_unit,
        "correlationId": period.period_id,
        "reconciliationId": reconciliation_id or str(uuid.uuid4()),
        "recountId": recount_id or str(uuid.uuid4()),
        "workstationId": period.terminal_id,
        "operatorId": next(iter(cashiers)) if len(cashiers) == 1 else None,
        "comment": comment,
        "timestamp": iso_utc(now or datetime.now(UTC), milliseconds=True),
        "businessDate": period.business_date.isoformat(),
        "tenders": tenders,
    }
    validate_recount(event)
    return event

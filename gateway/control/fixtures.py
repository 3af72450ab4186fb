"""Fixtures: a known world to start tests from (`serve --seed`, `POST /admin/seed`).

A fixture is YAML or JSON, checked against `SCHEMA` (JSON Schema) before anything is
written. It names shops with their users and passwords, terminals with fixed terminalIds,
passwords, SEQR IDs and their kind (cash register or webshop), and optionally invoices in
any state, paid ones included. Everything is created through the same domain functions the
SOAP operations use, in one transaction: a fixture loads wholly or not at all.

    shops:
      - id: shop-1
        name: Store 111
        users: [{id: "9900", password: s3cret}]
        terminals:
          - terminalId: 0123456789abcdef0123456789abcdef
            password: till-pw
            name: Till 1
            seqrId: TILL1
            kind: cash-register
            invoices:
              - {amount: "25.00", cashierId: anna, status: PAID}
"""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from gateway import passwords, payments, shops, terminals
from gateway.auth import TERMINALID, Principal
from gateway.config import PaymentRules
from gateway.invoices import Amount, InvoiceData, InvoiceRow
from gateway.references import new_terminal_id
from storage.models import Invoice, Terminal

_TEXT = {"type": "string", "minLength": 1, "maxLength": 200}
_DECIMAL = {"type": ["string", "number"], "pattern": r"^-?\d+(\.\d{1,5})?$"}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://seqr-emulator.invalid/fixture.schema.json",
    "title": "SEQR emulator fixture",
    "type": "object",
    "additionalProperties": False,
    "required": ["shops"],
    "properties": {"shops": {"type": "array", "items": {"$ref": "#/$defs/shop"}}},
    "$defs": {
        "shop": {
            "type": "object", "additionalProperties": False, "required": ["id", "users"],
            "properties": {
                "id": {"type": "string", "minLength": 1, "maxLength": 64},
                "name": _TEXT,
                "users": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/user"}},
                "terminals": {"type": "array", "items": {"$ref": "#/$defs/terminal"}},
            },
        },
        "user": {
            "type": "object", "additionalProperties": False, "required": ["id", "password"],
            "properties": {"id": {"type": "string", "minLength": 1, "maxLength": 64},
                           "password": {"type": "string",
                                        "minLength": passwords.MIN_PASSWORD_LENGTH}},
        },
        "terminal": {
            "type": "object", "additionalProperties": False, "required": ["password"],
            "properties": {
                "terminalId": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                "password": {"type": "string", "minLength": passwords.MIN_PASSWORD_LENGTH},
                "name": _TEXT,
                "externalTerminalId": _TEXT,
                "seqrId": {"type": "string", "pattern": terminals.SEQR_ID_RE.pattern},
                "kind": {"enum": ["cash-register", "webshop"]},
                "invoices": {"type": "array", "items": {"$ref": "#/$defs/invoice"}},
            },
        },
        "invoice": {
            "type": "object", "additionalProperties": False, "required": ["amount"],
            "properties": {
                "reference": {"type": "string", "pattern": r"^\d{13}$"},
                "amount": _DECIMAL,
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                "title": _TEXT,
                "cashierId": _TEXT,
                "clientInvoiceId": _TEXT,
                "notificationUrl": {"type": "string"},
                "paymentMode": {"enum": ["IMMEDIATE_DEBIT", "RESERVATION_DESIRED",
                                         "RESERVATION_REQUIRED"]},
                "acknowledgmentMode": {"enum": ["NO_ACKNOWLEDGMENT", "OPTIONAL_ACKNOWLEDGMENT",
                                                "REQUIRE_ACKNOWLEDGMENT"]},
                "status": {"enum": ["ISSUED", "PAID", "RESERVED", "CANCELED", "FAILED"]},
                "seen": {"type": "boolean", "description":
                         "PAID only: the register has seen the payment, so it is in the ledger "
                         "(default true); false leaves it to the 20-second rule"},
            },
        },
    },
}

_KINDS = {"cash-register": Terminal.CASH_REGISTER, "webshop": Terminal.WEBSHOP}  # as fixtures say


class FixtureError(ValueError):
    """A fixture that does not match the schema, or clashes with the stored state."""


@dataclass
class Seeded:
    """What a fixture made: ids, in the fixture's order."""

    shops: list[str] = field(default_factory=list)
    terminals: list[str] = field(default_factory=list)
    invoices: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"shops": self.shops, "terminals": self.terminals, "invoices": self.invoices}


def parse(text: str | bytes) -> dict[str, Any]:
    """A fixture from YAML or JSON text (JSON is YAML), checked against the schema."""
    import yaml  # imported here: only seeding needs it

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise FixtureError(f"not YAML or JSON: {error}") from None
    check(data)
    return data  # type: ignore[no-any-return]


def check(data: Any) -> None:
    import jsonschema

    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(data),
                    key=lambda e: list(e.absolute_path))
    if errors:
        raise FixtureError("; ".join(
            f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
            for e in errors[:5]))


def seed(session: Session, data: dict[str, Any], rules: PaymentRules, now: datetime) -> Seeded:
    """Create the fixture's world. Existing shops with the same id get the fixture's users
    and terminals added; an id that is already taken elsewhere is an error."""
    check(data)
    seeded = Seeded()
    for shop in data["shops"]:
        for number, user in enumerate(shop["users"]):
            shops.add_reseller(session, shop["id"], user["id"], user["password"],
                               shop.get("name") if number == 0 else None)
        seeded.shops.append(shop["id"])
        for spec in shop.get("terminals", ()):
            terminal = _terminal(session, shop["id"], spec, now)
            seeded.terminals.append(terminal.id)
            for invoice in spec.get("invoices", ()):
                seeded.invoices.append(_invoice(session, terminal, invoice, rules, now))
    return seeded


def _terminal(session: Session, reseller_id: str, spec: dict[str, Any],
              now: datetime) -> Terminal:
    terminal_id = spec.get("terminalId") or new_terminal_id()
    if session.get(Terminal, terminal_id) is not None:
        raise FixtureError(f"terminal {terminal_id} exists already (reset first)")
    seqr_id = spec.get("seqrId")
    if seqr_id and terminals.seqr_id_holder(session, seqr_id) is not None:
        raise FixtureError(f"SEQR ID {seqr_id} belongs to another terminal (reset first)")
    terminals.add_terminal(
        session, reseller_id, spec.get("externalTerminalId"), spec["password"],
        spec.get("name"), _KINDS[spec.get("kind", "cash-register")], terminal_id=terminal_id,
        now=now)
    terminal = session.get(Terminal, terminal_id)
    assert terminal is not None
    terminal.seqr_id = seqr_id.upper() if seqr_id else None  # stored as assignSeqrId does
    session.flush()
    return terminal


def _invoice(session: Session, terminal: Terminal, spec: dict[str, Any], rules: PaymentRules,
             now: datetime) -> dict[str, Any]:
    till = Principal(TERMINALID, terminal.reseller_id, terminal_id=terminal.id)
    total = Amount(spec.get("currency", "SEK"), Decimal(str(spec["amount"])))
    data = InvoiceData(
        payment_mode=spec.get("paymentMode", "IMMEDIATE_DEBIT"),
        acknowledgment_mode=spec.get("acknowledgmentMode", "NO_ACKNOWLEDGMENT"),
        title=spec.get("title"), client_invoice_id=spec.get("clientInvoiceId"),
        rows=(InvoiceRow(description=spec.get("title", "Item"), quantity=Decimal(1),
                         total=total),),
        total=total, cashier_id=spec.get("cashierId"),
        notification_url=spec.get("notificationUrl"),
    )
    reference = payments.send_invoice(session, till, data, rules, now).reference
    wanted = spec.get("reference")
    if wanted and wanted != reference:
        if session.get(Invoice, wanted) is not None:
            raise FixtureError(f"invoice {wanted} exists already (reset first)")
        session.execute(update(Invoice).where(Invoice.reference == reference)
                        .values(reference=wanted))
        session.expire_all()
        reference = wanted
    status = spec.get("status", Invoice.ISSUED)
    if status == Invoice.PAID:
        payments.buyer_pay(session, reference, rules, now)
        if spec.get("seen", True):
            payments.get_payment_status(session, till, reference, rules, now)
    elif status == Invoice.RESERVED:
        payments.buyer_reserve(session, reference, rules, now)
    elif status == Invoice.FAILED:
        payments.buyer_fail(session, reference, rules, now)
    elif status == Invoice.CANCELED:
        payments.cancel_invoice(session, till, reference, rules, now)
    row = session.get(Invoice, reference)
    assert row is not None
    return {"invoiceReference": reference, "terminalId": terminal.id, "status": row.status,
            "paymentReference": row.payment_reference}


"""registerTerminal, unregisterTerminal and assignSeqrId."""

import re
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway import limits, periods
from gateway.auth import Principal, require_reseller_user, require_terminal
from gateway.errors import SeqrError
from gateway.passwords import hash_password, password_rule_broken
from gateway.references import new_terminal_id
from storage.models import Terminal, utcnow
from wsdl.resultcodes import ResultCode

SEQR_ID_RE = re.compile(r"^[A-Za-z0-9]{1,64}$")
#: the QR sticker at a till reads this followed by the till's SEQR ID
STICKER_QR_PREFIX = "HTTP://SEQR.SE/Q"


def sticker_qr(seqr_id: str) -> str:
    """The text of the QR sticker linked to a till by `assignSeqrId`."""
    return STICKER_QR_PREFIX + seqr_id


def register_terminal(
    session: Session,
    principal: Principal,
    external_terminal_id: str | None,
    password: str | None,
    name: str | None,
    now: datetime | None = None,
) -> str:
    """A new cash register of the caller's shop, with its own open terminal period."""
    require_reseller_user(principal, "registerTerminal")
    return add_terminal(session, principal.reseller_id, external_terminal_id, password, name,
                        now=now)


def add_terminal(session: Session, reseller_id: str, external_terminal_id: str | None,
                 password: str | None, name: str | None,
                 kind: str = Terminal.CASH_REGISTER, *, terminal_id: str | None = None,
                 now: datetime | None = None) -> str:
    """A new terminal of a shop: a cash register (registerTerminal), or a webshop's terminal,
    which SEQR created for the webshop itself (`seqr-gateway add-terminal --webshop`); a
    tester's fixture gives its terminalId (`terminal_id`) and the emulator's time (`now`)."""
    rejected = ResultCode.REJECTED_BUSINESS_LOGIC
    limits.check_length(external_terminal_id, limits.EXTERNAL_TERMINAL_ID, "externalTerminalId",
                        rejected)
    limits.check_length(name, limits.TERMINAL_NAME, "name", rejected)
    broken = password_rule_broken(password)
    if broken is not None or password is None:
        raise SeqrError(ResultCode.ACCESS_DENIED, f"terminal password refused: {broken}")
    now = now or utcnow()
    terminal = Terminal(
        id=terminal_id or new_terminal_id(),
        reseller_id=reseller_id,
        external_terminal_id=external_terminal_id,
        name=name or external_terminal_id,
        password_hash=hash_password(password),
        kind=kind,
        registered_at=now,
    )
    session.add(terminal)
    session.flush()
    periods.open_scope(session, reseller_id, terminal.id, now)
    return terminal.id


def unregister_terminal(session: Session, principal: Principal,
                        now: datetime | None = None) -> None:
    """The terminal named by the context stops authenticating (33) and frees its SEQR ID.

    Its transactions stay; its shop can still close its terminal period and fetch reports.
    """
    terminal = session.get(Terminal, require_terminal(principal, "unregisterTerminal"))
    assert terminal is not None
    terminal.status = Terminal.UNREGISTERED
    terminal.unregistered_at = now or utcnow()
    terminal.seqr_id = None
    session.flush()


def seqr_id_holder(session: Session, seqr_id: str) -> Terminal | None:
    """The terminal with this SEQR ID, in any letter case: the sticker's QR code is upper
    case, a register may have typed it in lower case. New IDs are stored upper case; the
    comparison also finds IDs stored as typed before that."""
    wanted = seqr_id.strip().upper()
    return session.scalars(
        select(Terminal).where(func.upper(Terminal.seqr_id) == wanted).limit(1)
    ).first()


def assign_seqr_id(session: Session, principal: Principal, seqr_id: str | None) -> None:
    """Link the till's QR sticker (`HTTP://SEQR.SE/Q<seqrId>`) to the calling terminal."""
    terminal_id = require_terminal(principal, "assignSeqrId")
    seqr_id = (seqr_id or "").strip().upper()
    if not SEQR_ID_RE.match(seqr_id):
        raise SeqrError(ResultCode.INVALID_SEQR_ID, "a SEQR ID is 1 to 64 letters and digits")
    found = seqr_id_holder(session, seqr_id)
    holder = found.id if found is not None else None
    if holder is not None and holder != terminal_id:
        raise SeqrError(
            ResultCode.INVALID_SEQR_ID, f"SEQR ID {seqr_id} belongs to another terminal"
        )
    terminal = session.get(Terminal, terminal_id)
    assert terminal is not None
    terminal.seqr_id = seqr_id
    session.flush()

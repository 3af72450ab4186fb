"""registerTerminal, unregisterTerminal and assignSeqrId."""

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import periods
from gateway.auth import Principal, require_reseller_user, require_terminal
from gateway.errors import SeqrError
from gateway.passwords import MIN_PASSWORD_LENGTH, hash_password
from gateway.references import new_terminal_id
from storage.models import Terminal, utcnow
from wsdl.resultcodes import ResultCode

SEQR_ID_RE = re.compile(r"^[A-Za-z0-9]{1,64}$")


def register_terminal(
    session: Session,
    principal: Principal,
    external_terminal_id: str | None,
    password: str | None,
    name: str | None,
) -> str:
    """A new terminal of the caller's shop, with its own open terminal period."""
    require_reseller_user(principal, "registerTerminal")
    if password is None or len(password) < MIN_PASSWORD_LENGTH:
        raise SeqrError(
            ResultCode.ACCESS_DENIED,
            f"terminal password must have at least {MIN_PASSWORD_LENGTH} characters",
        )
    terminal = Terminal(
        id=new_terminal_id(),
        reseller_id=principal.reseller_id,
        external_terminal_id=external_terminal_id,
        name=name or external_terminal_id,
        password_hash=hash_password(password),
    )
    session.add(terminal)
    session.flush()
    periods.open_scope(session, principal.reseller_id, terminal.id)
    return terminal.id


def unregister_terminal(session: Session, principal: Principal) -> None:
    """The terminal named by the context stops authenticating (33) and frees its SEQR ID.

    Its transactions stay; its shop can still close its terminal period and fetch reports.
    """
    terminal = session.get(Terminal, require_terminal(principal, "unregisterTerminal"))
    assert terminal is not None
    terminal.status = Terminal.UNREGISTERED
    terminal.unregistered_at = utcnow()
    terminal.seqr_id = None
    session.flush()


def assign_seqr_id(session: Session, principal: Principal, seqr_id: str | None) -> None:
    """Link the till's QR sticker (`HTTP://SEQR.SE/Q<seqrId>`) to the calling terminal."""
    terminal_id = require_terminal(principal, "assignSeqrId")
    seqr_id = (seqr_id or "").strip()
    if not SEQR_ID_RE.match(seqr_id):
        raise SeqrError(ResultCode.INVALID_SEQR_ID, "a SEQR ID is 1 to 64 letters and digits")
    holder = session.scalar(select(Terminal.id).where(Terminal.seqr_id == seqr_id))
    if holder is not None and holder != terminal_id:
        raise SeqrError(
            ResultCode.INVALID_SEQR_ID, f"SEQR ID {seqr_id} belongs to another terminal"
        )
    terminal = session.get(Terminal, terminal_id)
    assert terminal is not None
    terminal.seqr_id = seqr_id
    session.flush()

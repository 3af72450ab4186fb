"""clientContext -> an authenticated principal, or the SEQR result code saying why not."""

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.errors import SeqrError
from gateway.passwords import verify_password
from storage.models import ResellerUser, Terminal
from wsdl.resultcodes import ResultCode

RESELLERUSER = "RESELLERUSER"
TERMINALID = "TERMINALID"


@dataclass(frozen=True)
class Credentials:
    """What a clientContext carries, any of it possibly missing."""

    principal_type: str | None = None
    principal_id: str | None = None
    user_id: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class Principal:
    kind: Literal["RESELLERUSER", "TERMINALID"]
    reseller_id: str
    terminal_id: str | None = None
    user_id: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.kind == TERMINALID


def authenticate(session: Session, creds: Credentials | None) -> Principal:
    """Check the credentials; raise `SeqrError` with 20/29/33/37 as SEQR does."""
    if creds is None or (not creds.principal_type and not creds.principal_id):
        raise SeqrError(ResultCode.AUTHENTICATION_FAILED, "no initiatorPrincipalId in context")
    kind = (creds.principal_type or "").strip().upper()
    if kind == RESELLERUSER:
        return _reseller_user(session, creds)
    if kind == TERMINALID:
        return _terminal(session, creds)
    raise SeqrError(
        ResultCode.INVALID_INITIATOR_PRINCIPAL_ID,
        f"principal type {creds.principal_type!r} is not RESELLERUSER or TERMINALID",
    )


def _reseller_user(session: Session, creds: Credentials) -> Principal:
    if not creds.principal_id:
        raise SeqrError(ResultCode.INITIATOR_PRINCIPAL_NOT_FOUND, "no reseller id in context")
    user = session.scalar(
        select(ResellerUser).where(
            ResellerUser.reseller_id == creds.principal_id,
            ResellerUser.user_id == (creds.user_id or ""),
        )
    )
    if user is None:
        raise SeqrError(
            ResultCode.INITIATOR_PRINCIPAL_NOT_FOUND,
            f"no reseller user {creds.principal_id}/{creds.user_id}",
        )
    if not verify_password(creds.password, user.password_hash):
        raise SeqrError(ResultCode.AUTHENTICATION_FAILED, "wrong password")
    return Principal(RESELLERUSER, user.reseller_id, user_id=user.user_id)


def _terminal(session: Session, creds: Credentials) -> Principal:
    terminal = session.get(Terminal, creds.principal_id) if creds.principal_id else None
    if terminal is None:
        raise SeqrError(
            ResultCode.INVALID_INITIATOR_PRINCIPAL_ID, f"no terminal {creds.principal_id!r}"
        )
    if not verify_password(creds.password, terminal.password_hash):
        raise SeqrError(ResultCode.AUTHENTICATION_FAILED, "wrong password")
    if terminal.status != Terminal.ACTIVE:
        raise SeqrError(
            ResultCode.INVALID_INITIATOR_PRINCIPAL_STATE, "terminal is unregistered"
        )
    return Principal(TERMINALID, terminal.reseller_id, terminal_id=terminal.id)


def require_reseller_user(principal: Principal, operation: str) -> None:
    if principal.is_terminal:
        raise SeqrError(ResultCode.ACCESS_DENIED, f"{operation} needs a RESELLERUSER principal")


def require_terminal(principal: Principal, operation: str) -> str:
    if not principal.is_terminal or principal.terminal_id is None:
        raise SeqrError(ResultCode.ACCESS_DENIED, f"{operation} needs a TERMINALID principal")
    return principal.terminal_id

"""clientContext -> an authenticated principal, or the SEQR result code saying why not."""

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from gateway.errors import SeqrError
from gateway.throttle import UNGUARDED, PasswordGuard
from storage.database import NarrowQuery, Rows
from storage.models import ResellerUser, Terminal
from wsdl.resultcodes import ResultCode

RESELLERUSER = "RESELLERUSER"
TERMINALID = "TERMINALID"

#: the address of the client whose request this thread is answering (set by the wire
#: layer); failed password checks are counted per principal and per address
client_address: ContextVar[str | None] = ContextVar("client_address", default=None)


@dataclass(frozen=True)
class Credentials:
    """What a clientContext carries, any of it possibly missing."""

    principal_type: str | None = None
    principal_id: str | None = None
    user_id: str | None = None
    password: str | None = None

    def with_user_in_id(self) -> "Credentials | None":
        """The Java cash-register sample's RESELLERUSER: `id` spelled `shop/user` and no
        `userId`, which SEQR took as reseller `shop`, user `user`. Those credentials with
        the two apart; None for any other spelling."""
        if (self.principal_type or "").strip().upper() != RESELLERUSER or self.user_id:
            return None
        shop, slash, user = (self.principal_id or "").rpartition("/")
        if not slash or not shop or not user:
            return None
        return Credentials(self.principal_type, shop, user, self.password)


@dataclass(frozen=True)
class Principal:
    kind: Literal["RESELLERUSER", "TERMINALID"]
    reseller_id: str
    terminal_id: str | None = None
    user_id: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.kind == TERMINALID


def authenticate(session: Session | Connection | Rows, creds: Credentials | None,
                 guard: PasswordGuard = UNGUARDED) -> Principal:
    """Check the credentials; raise `SeqrError` with 20/29/33/37 as SEQR does.

    A principal that does not exist costs the same password check as one that does
    (`guard.check` against a dummy hash); `guard` also throttles repeated failures."""
    if creds is None or (not creds.principal_type and not creds.principal_id):
        raise SeqrError(ResultCode.AUTHENTICATION_FAILED, "no initiatorPrincipalId in context")
    kind = (creds.principal_type or "").strip().upper()
    if kind == RESELLERUSER:
        return _reseller_user(session, creds, guard)
    if kind == TERMINALID:
        return _terminal(session, creds, guard)
    raise SeqrError(
        ResultCode.INVALID_INITIATOR_PRINCIPAL_ID,
        f"principal type {creds.principal_type!r} is not RESELLERUSER or TERMINALID",
    )


# Every request authenticates: narrow statements, built once, run on the driver (an ORM
# load, or even a statement built and executed per call, cost several times the query).
_RESELLER_USER = NarrowQuery(select(
    ResellerUser.reseller_id, ResellerUser.user_id, ResellerUser.password_hash
).where(
    ResellerUser.reseller_id == bindparam("reseller_id"),
    ResellerUser.user_id == bindparam("user_id"),
))
_TERMINAL = NarrowQuery(select(
    Terminal.id, Terminal.reseller_id, Terminal.password_hash, Terminal.status
).where(Terminal.id == bindparam("terminal_id")))


def _reseller_user(session: Session | Connection | Rows, creds: Credentials,
                   guard: PasswordGuard) -> Principal:
    if not creds.principal_id:
        raise SeqrError(ResultCode.INITIATOR_PRINCIPAL_NOT_FOUND, "no reseller id in context")
    user = _RESELLER_USER.first(session, reseller_id=creds.principal_id,
                                user_id=creds.user_id or "")
    key = f"{RESELLERUSER}:{creds.principal_id}/{creds.user_id or ''}"
    good = guard.check(key, client_address.get(), creds.password,
                       user.password_hash if user is not None else None)
    if user is None:
        raise SeqrError(
            ResultCode.INITIATOR_PRINCIPAL_NOT_FOUND,
            f"no reseller user {creds.principal_id}/{creds.user_id}",
        )
    if not good:
        raise SeqrError(ResultCode.AUTHENTICATION_FAILED, "wrong password")
    return Principal(RESELLERUSER, user.reseller_id, user_id=user.user_id)


def _terminal(session: Session | Connection | Rows, creds: Credentials,
              guard: PasswordGuard) -> Principal:
    terminal = _TERMINAL.first(session, terminal_id=creds.principal_id) if (
        creds.principal_id) else None
    good = guard.check(f"{TERMINALID}:{creds.principal_id or ''}", client_address.get(),
                       creds.password, terminal.password_hash if terminal is not None else None)
    if terminal is None:
        raise SeqrError(
            ResultCode.INVALID_INITIATOR_PRINCIPAL_ID, f"no terminal {creds.principal_id!r}"
        )
    if not good:
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

"""requestPrincipalInformation and changePrincipalPassword."""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.auth import RESELLERUSER, TERMINALID, Credentials, Principal
from gateway.errors import SeqrError
from gateway.passwords import hash_password, password_rule_broken
from storage.models import Reseller, ResellerUser, Terminal
from wsdl.resultcodes import ResultCode


@dataclass(frozen=True)
class PrincipalInfo:
    principal_id: str
    principal_type: str
    user_id: str | None
    name: str | None
    status: str


def _target(principal: Principal, requested: Credentials | None) -> tuple[str, str, str | None]:
    """(type, id, userId) of the principal asked about: the caller unless it names another."""
    if principal.is_terminal:
        own = (TERMINALID, principal.terminal_id or "", None)
    else:
        own = (RESELLERUSER, principal.reseller_id, principal.user_id)
    if requested is None or not (requested.principal_id or requested.principal_type):
        return own
    kind = (requested.principal_type or own[0]).strip().upper()
    return kind, (requested.principal_id or "").strip(), requested.user_id or own[2]


def _terminal_of_shop(session: Session, principal: Principal, terminal_id: str) -> Terminal:
    terminal = session.get(Terminal, terminal_id)
    allowed = terminal is not None and terminal.reseller_id == principal.reseller_id and (
        not principal.is_terminal or principal.terminal_id == terminal_id
    )
    if not allowed:
        raise SeqrError(ResultCode.ACCESS_DENIED, f"terminal {terminal_id} is not yours")
    assert terminal is not None
    return terminal


def _user_of_shop(session: Session, principal: Principal, reseller_id: str,
                  user_id: str | None) -> ResellerUser:
    if principal.is_terminal or reseller_id != principal.reseller_id:
        raise SeqrError(ResultCode.ACCESS_DENIED, f"reseller {reseller_id} is not yours")
    user = session.scalar(select(ResellerUser).where(
        ResellerUser.reseller_id == reseller_id, ResellerUser.user_id == (user_id or "")))
    if user is None:
        raise SeqrError(ResultCode.ACCESS_DENIED, f"no user {user_id} in reseller {reseller_id}")
    return user


def request_principal_information(session: Session, principal: Principal,
                                  requested: Credentials | None) -> PrincipalInfo:
    kind, principal_id, user_id = _target(principal, requested)
    if kind == TERMINALID:
        terminal = _terminal_of_shop(session, principal, principal_id)
        return PrincipalInfo(terminal.id, TERMINALID, None, terminal.name, terminal.status)
    if kind == RESELLERUSER:
        user = _user_of_shop(session, principal, principal_id, user_id)
        reseller = session.get(Reseller, user.reseller_id)
        assert reseller is not None
        return PrincipalInfo(reseller.id, RESELLERUSER, user.user_id, reseller.name, "ACTIVE")
    raise SeqrError(ResultCode.INVALID_INITIATOR_PRINCIPAL_ID, f"unknown principal type {kind}")


def change_principal_password(session: Session, principal: Principal,
                              requested: Credentials | None, new_password: str | None) -> None:
    """The caller's own password, or (for a shop's user) one of the shop's terminals'; never
    another user's, not even a user of the same shop (21)."""
    broken = password_rule_broken(new_password)
    if broken is not None or new_password is None:
        raise SeqrError(ResultCode.INVALID_NEW_PASSWORD, broken)
    kind, principal_id, user_id = _target(principal, requested)
    if kind == TERMINALID:
        _terminal_of_shop(session, principal, principal_id).password_hash = hash_password(
            new_password)
    elif kind == RESELLERUSER:
        user = _user_of_shop(session, principal, principal_id, user_id)
        if user.user_id != principal.user_id:  # a sibling user of the same shop
            raise SeqrError(ResultCode.ACCESS_DENIED,
                            f"user {principal.user_id} may not change the password of user "
                            f"{user.user_id}")
        user.password_hash = hash_password(new_password)
    else:
        raise SeqrError(ResultCode.INVALID_INITIATOR_PRINCIPAL_ID, f"unknown principal type {kind}")

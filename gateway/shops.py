"""Shops (SEQR: resellers) and their users: created by the operator, not over SOAP."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import periods
from gateway.passwords import hash_password, password_rule_broken, verify_password
from storage.models import Reseller, ResellerUser

#: the shop `serve` seeds into an empty database (its password: `Settings.demo_password`)
DEMO_RESELLER_ID = "demo-shop"
DEMO_USER_ID = "9900"
DEMO_NAME = "SEQR Demo Shop"


def add_reseller(
    session: Session, reseller_id: str, user_id: str, password: str, name: str | None = None
) -> Reseller:
    """Create the shop if it is new, and the user within it (or set the user's password).

    The password follows the rules SOAP applies to a new password (ValueError if not)."""
    broken = password_rule_broken(password)
    if broken is not None:
        raise ValueError(broken)
    reseller = session.get(Reseller, reseller_id)
    if reseller is None:
        reseller = Reseller(id=reseller_id, name=name or reseller_id)
        session.add(reseller)
        session.flush()
        periods.open_scope(session, reseller_id)
    elif name:
        reseller.name = name
    user = _user(session, reseller_id, user_id)
    if user is None:
        session.add(
            ResellerUser(
                reseller_id=reseller_id, user_id=user_id, password_hash=hash_password(password)
            )
        )
    else:
        user.password_hash = hash_password(password)
    session.flush()
    return reseller


def user_exists(session: Session, reseller_id: str, user_id: str) -> bool:
    return session.query(ResellerUser.user_id).filter_by(
        reseller_id=reseller_id, user_id=user_id).first() is not None


def has_resellers(session: Session) -> bool:
    return session.scalar(select(Reseller.id).limit(1)) is not None


def password_is(session: Session, reseller_id: str, user_id: str, password: str) -> bool:
    user = _user(session, reseller_id, user_id)
    return user is not None and verify_password(password, user.password_hash)


def _user(session: Session, reseller_id: str, user_id: str) -> ResellerUser | None:
    return session.scalar(select(ResellerUser).where(
        ResellerUser.reseller_id == reseller_id, ResellerUser.user_id == user_id))


def seed_demo(session: Session, password: str) -> bool:
    """The demo shop on an empty database; whether its credentials are the demo ones (the
    database was empty, or the demo shop still has this password)."""
    if not has_resellers(session):
        add_reseller(session, DEMO_RESELLER_ID, DEMO_USER_ID, password, DEMO_NAME)
        return True
    return password_is(session, DEMO_RESELLER_ID, DEMO_USER_ID, password)

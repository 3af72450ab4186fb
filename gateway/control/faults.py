"""Fault injection: rules that make chosen calls misbehave on purpose.

A rule matches calls by operation, principal id and terminal id (each optional), and hits
some of the matching calls: only the Nth (`nth`), every Nth (`every`), the next K (`times`),
by chance (`probability`); all given conditions must hold, none given means every call.
Counting is exact across processes: a matching call adds 1 to the rule's `matched` counter
with an UPDATE on the rule's row and reads it back in the same transaction, and a hit claims
one of the `times` with a conditional UPDATE (`fired < times`).

Effects (one per rule; `delayMs` may accompany any of them):

- `result_code`: the operation's answer with that resultCode (93, 94, 90, any); nothing done
- `http_error`: that HTTP status with a SOAP `Server` fault; nothing done
- `delay`: the normal answer, `delayMs` later
- `drop`: the connection closed without an answer; nothing done
- `report_not_ready`: executeReport answers 2 REPORT_NOT_READY, for the next `polls` calls or
  during `seconds` after the first
- `render_fails`: the report worker's render raises (the job is retried, and answers 90 after
  its last attempt)

A rule may expire (`expiresIn` seconds, real time). Rules are read by each process at most
every `clock.REFRESH_SECONDS`; the admin API waits that long after a change before it answers.
"""

import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from gateway.clock import REFRESH_SECONDS
from storage.database import Database
from storage.models import FaultRule, utcnow

RESULT_CODE = "result_code"
HTTP_ERROR = "http_error"
DELAY = "delay"
DROP = "drop"
REPORT_NOT_READY = "report_not_ready"
RENDER_FAILS = "render_fails"
EFFECTS = (RESULT_CODE, HTTP_ERROR, DELAY, DROP, REPORT_NOT_READY, RENDER_FAILS)
RENDER = "render"  # what render_fails rules match: report renders, not SOAP calls


class RuleError(ValueError):
    """A rule that cannot be applied (HTTP 400 from the admin API)."""


class InjectedFailureError(RuntimeError):
    """A failure a fault rule asked for."""


@dataclass(frozen=True)
class Rule:
    id: int
    effect: str
    operation: str | None = None
    principal_id: str | None = None
    terminal_id: str | None = None
    nth: int | None = None
    every: int | None = None
    times: int | None = None
    probability: float | None = None
    result_code: int | None = None
    http_status: int | None = None
    delay_ms: int | None = None
    hold_seconds: float | None = None
    expires_at: datetime | None = None

    @classmethod
    def of(cls, row: FaultRule) -> "Rule":
        return cls(row.id, row.effect, row.operation, row.principal_id, row.terminal_id,
                   row.nth, row.every, row.times, row.probability, row.result_code,
                   row.http_status, row.delay_ms, row.hold_seconds, row.expires_at)

    @property
    def kind(self) -> str:
        return RENDER if self.effect == RENDER_FAILS else "call"

    def matches(self, operation: str | None, principal_id: str | None,
                terminal_id: str | None, now: datetime) -> bool:
        if self.expires_at is not None and self.expires_at <= now:
            return False
        if self.effect == REPORT_NOT_READY and operation != "executeReport":
            return False
        return (
            (self.operation is None or self.operation == operation)
            and (self.principal_id is None or self.principal_id == principal_id)
            and (self.terminal_id is None or self.terminal_id == terminal_id)
        )


@dataclass(frozen=True)
class Hit:
    """A rule's effect on one call."""

    rule: Rule

    @property
    def label(self) -> str:
        rule = self.rule
        detail = {
            RESULT_CODE: f" {rule.result_code}", HTTP_ERROR: f" {rule.http_status}",
            DELAY: f" {rule.delay_ms} ms",
        }.get(rule.effect, "")
        return f"rule {rule.id}: {rule.effect}{detail}"

    @property
    def effect(self) -> str:
        return self.rule.effect


# --- the rules as the admin API gives and takes them ------------------------------------------

_FIELDS = {  # JSON name: (column, type)
    "operation": ("operation", str), "principal": ("principal_id", str),
    "terminal": ("terminal_id", str), "nth": ("nth", int), "every": ("every", int),
    "times": ("times", int), "probability": ("probability", float),
    "effect": ("effect", str), "resultCode": ("result_code", int),
    "httpStatus": ("http_status", int), "delayMs": ("delay_ms", int),
    "seconds": ("hold_seconds", float),
}


def _typed(name: str, value: Any, kind: type) -> Any:
    if value is None:
        return None
    if kind is str:
        if not isinstance(value, str) or not value:
            raise RuleError(f"{name} must be a non-empty string")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RuleError(f"{name} must be a number")
    if kind is int and value != int(value):
        raise RuleError(f"{name} must be a whole number")
    return kind(value)


def add(session: Session, spec: dict[str, Any]) -> FaultRule:
    """A new rule from its JSON description (see `RULE_SCHEMA` in gateway/wire/openapi.py)."""
    if not isinstance(spec, dict):
        raise RuleError("a rule is a JSON object")
    unknown = set(spec) - set(_FIELDS) - {"polls", "expiresIn"}
    if unknown:
        raise RuleError(f"unknown field(s): {', '.join(sorted(unknown))}")
    values = {column: _typed(name, spec.get(name), kind)
              for name, (column, kind) in _FIELDS.items()}
    polls = _typed("polls", spec.get("polls"), int)
    expires_in = _typed("expiresIn", spec.get("expiresIn"), float)
    effect = values["effect"]
    if effect not in EFFECTS:
        raise RuleError(f"effect must be one of {', '.join(EFFECTS)}")
    for name in ("nth", "every", "times", "polls"):
        given = polls if name == "polls" else values[name]
        if given is not None and given < 1:
            raise RuleError(f"{name} must be at least 1")
    if values["probability"] is not None and not 0 < values["probability"] <= 1:
        raise RuleError("probability must be above 0 and at most 1")
    if effect == RESULT_CODE and values["result_code"] is None:
        raise RuleError("effect result_code needs resultCode")
    if effect == HTTP_ERROR and not 400 <= (values["http_status"] or 0) <= 599:
        raise RuleError("effect http_error needs httpStatus 400..599")
    if effect == DELAY and not values["delay_ms"]:
        raise RuleError("effect delay needs delayMs")
    if values["delay_ms"] is not None and not 0 <= values["delay_ms"] <= 600_000:
        raise RuleError("delayMs must be 0..600000")
    if effect == REPORT_NOT_READY:
        if (polls is None) == (values["hold_seconds"] is None):
            raise RuleError("effect report_not_ready needs polls or seconds (one of them)")
        if polls is not None:
            if values["times"] is not None:
                raise RuleError("polls is times for report_not_ready: give one of them")
            values["times"] = polls
    elif polls is not None or values["hold_seconds"] is not None:
        raise RuleError("polls and seconds belong to effect report_not_ready")
    if effect == RENDER_FAILS and (values["operation"] or values["principal_id"]):
        raise RuleError("render_fails rules match renders: by terminal only")
    row = FaultRule(**values, matched=0, fired=0, created_at=utcnow())
    if expires_in is not None:
        row.expires_at = row.created_at + timedelta(seconds=expires_in)
    session.add(row)
    session.flush()
    return row


def describe(row: FaultRule) -> dict[str, Any]:
    out: dict[str, Any] = {"id": row.id}
    for name, (column, _kind) in _FIELDS.items():
        out[name] = getattr(row, column)
    out.update(
        createdAt=row.created_at.isoformat(),
        expiresAt=row.expires_at.isoformat() if row.expires_at else None,
        matched=row.matched, fired=row.fired,
    )
    return out


def listed(session: Session) -> list[FaultRule]:
    return list(session.scalars(select(FaultRule).order_by(FaultRule.id)))


def clear(session: Session, rule_id: int | None = None) -> int:
    stmt = delete(FaultRule)
    if rule_id is not None:
        stmt = stmt.where(FaultRule.id == rule_id)
    return session.execute(stmt).rowcount


# --- applying them -----------------------------------------------------------------------------


def _claim(session: Session, rule: Rule, now: datetime, *, may_fire: bool) -> bool:
    """Count one matching call on the rule's row; whether the rule hits it."""
    session.execute(update(FaultRule).where(FaultRule.id == rule.id)
                    .values(matched=FaultRule.matched + 1))
    if not may_fire:
        return False
    found = session.execute(select(FaultRule.matched, FaultRule.expires_at)
                            .where(FaultRule.id == rule.id)).first()
    if found is None:  # cleared meanwhile
        return False
    matched, expires_at = found
    if expires_at is not None and expires_at <= now:
        return False
    if rule.nth is not None and matched != rule.nth:
        return False
    if rule.every is not None and matched % rule.every != 0:
        return False
    if rule.probability is not None and random.random() >= rule.probability:
        return False
    stmt = update(FaultRule).where(FaultRule.id == rule.id)
    if rule.times is not None:
        stmt = stmt.where(FaultRule.fired < rule.times)
    if rule.hold_seconds is not None:  # the first hit starts the rule's time
        session.execute(update(FaultRule).where(FaultRule.id == rule.id,
                                                FaultRule.expires_at.is_(None))
                        .values(expires_at=now + timedelta(seconds=rule.hold_seconds)))
    return session.execute(stmt.values(fired=FaultRule.fired + 1)).rowcount == 1


class Faults:
    """The rules as one process applies them: read at most every REFRESH_SECONDS, so a
    process with no rules pays nothing per call but a clock check."""

    def __init__(self, db: Database, refresh: float = REFRESH_SECONDS) -> None:
        self.db = db
        self.refresh = refresh
        self._rules: tuple[Rule, ...] = ()
        self._valid_until = 0.0
        self._lock = threading.Lock()

    def rules(self) -> tuple[Rule, ...]:
        if time.monotonic() >= self._valid_until:
            with self._lock:
                started = time.monotonic()
                if started >= self._valid_until:
                    with self.db.read() as session:
                        self._rules = tuple(Rule.of(row) for row in listed(session))
                    self._valid_until = started + self.refresh
        return self._rules

    def _hit(self, kind: str, operation: str | None, principal_id: str | None,
             terminal_id: str | None) -> Hit | None:
        rules = self.rules()
        if not rules:
            return None
        now = utcnow()
        candidates = [rule for rule in rules if rule.kind == kind
                      and rule.matches(operation, principal_id, terminal_id, now)]
        if not candidates:
            return None
        hit = None
        with self.db.write() as session:
            for rule in candidates:  # every matching rule counts the call; the first hit wins
                if _claim(session, rule, now, may_fire=hit is None):
                    hit = Hit(rule)
        return hit

    def hit_call(self, operation: str | None, principal_id: str | None,
                 terminal_id: str | None) -> Hit | None:
        """The rule that hits this SOAP call, if any (its counters updated)."""
        return self._hit("call", operation, principal_id, terminal_id)

    def hit_render(self, report_id: str, terminal_id: str | None) -> Hit | None:
        """The render_fails rule that hits this report render, if any."""
        return self._hit(RENDER, None, None, terminal_id)

"""Reconciliation rules in the manner of Koncili's workflow (the project's seed
`002_f6d91cab6cca250a.txt`): a period's start is before its end; a period does not overlap
one already reconciled for the same scope; the integrator is notified at a registered URL
when a reconciliation completes. (Duplicate journal entries are refused by
`client.journal.parse_journal`, naming both lines.)

The periods this client reconciled are kept in a small JSON state file, by scope: the
endpoint and the shop or terminal. A period whose start is not known covers everything
before its end, as a SEQR period covers everything since the previous mark.
"""

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from client.errors import SeqrClientError

log = logging.getLogger(__name__)

STATE_VERSION = 1


class PeriodRuleError(SeqrClientError):
    """A period refused: its start is not before its end, or it overlaps one reconciled."""


def default_state_file() -> Path:
    """`$XDG_STATE_HOME/seqr-client/periods.json` (`~/.local/state/...` by default)."""
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "seqr-client" / "periods.json"


def scope_key(endpoint: str, shop: str | None, terminal_id: str | None) -> str:
    """Which periods may overlap: those of one shop, or one terminal, at one endpoint."""
    if terminal_id:
        return f"{endpoint} terminal {terminal_id}"
    return f"{endpoint} shop {shop}"


@dataclass(frozen=True)
class ReconciledPeriod:
    scope: str
    period_id: str
    start: datetime | None
    end: datetime | None
    reconciled_at: datetime
    result: str

    def as_dict(self) -> dict[str, Any]:
        return {"scope": self.scope, "transactionPeriodId": self.period_id,
                "start": _iso(self.start), "end": _iso(self.end),
                "reconciledAt": _iso(self.reconciled_at), "result": self.result}

    @classmethod
    def from_dict(cls, item: dict[str, Any]) -> "ReconciledPeriod":
        return cls(scope=item["scope"], period_id=item["transactionPeriodId"],
                   start=_time(item.get("start")), end=_time(item.get("end")),
                   reconciled_at=_time(item["reconciledAt"]) or datetime.now(UTC),
                   result=item.get("result", ""))

    def overlaps(self, start: datetime | None, end: datetime | None) -> bool:
        """Whether [start, end) meets this period (an unknown start: from the beginning;
        an unknown end: still open)."""
        return ((start is None or self.end is None or start < self.end)
                and (self.start is None or end is None or self.start < end))


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text).astimezone(UTC) if text else None


def check_span(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and not start < end:
        raise PeriodRuleError(
            f"the period's start {_iso(start)} is not before its end {_iso(end)}",
            "give a --period-start earlier than --period-end")


class PeriodLedger:
    """The periods reconciled so far, in a JSON file (written whole, atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def periods(self) -> list[ReconciledPeriod]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as error:
            raise PeriodRuleError(f"cannot read the state file {self.path}: {error}",
                                  "check --state-file (or SEQR_CLIENT_STATE_FILE)") from error
        try:
            data = json.loads(text)
            return [ReconciledPeriod.from_dict(item) for item in data["periods"]]
        except (ValueError, KeyError, TypeError) as error:
            raise PeriodRuleError(
                f"the state file {self.path} is not one this client wrote ({error})",
                "move it away (it only remembers which periods were reconciled) or give "
                "another --state-file") from error

    def find(self, scope: str, period_id: str) -> ReconciledPeriod | None:
        """The record of a period reconciled before, if any."""
        return next((p for p in self.periods()
                     if p.scope == scope and p.period_id == period_id), None)

    def previous_end(self, scope: str, before: datetime | None,
                     period_id: str | None = None) -> datetime | None:
        """The latest end of a period reconciled for `scope` no later than `before`: where
        the next period starts."""
        ends = [p.end for p in self.periods()
                if p.scope == scope and p.end is not None and p.period_id != period_id
                and (before is None or p.end <= before)]
        return max(ends, default=None)

    def check(self, scope: str, start: datetime | None, end: datetime | None,
              period_id: str | None = None) -> None:
        """PeriodRuleError if [start, end) is not a span, or overlaps a period reconciled
        for `scope` (the same period again is fine)."""
        check_span(start, end)
        for period in self.periods():
            if period.scope == scope and period.period_id != period_id and \
                    period.overlaps(start, end):
                since = _iso(period.start) or "the beginning"
                raise PeriodRuleError(
                    f"the period {_iso(start) or '(open start)'} .. {_iso(end) or '(now)'} "
                    f"overlaps period {period.period_id} ({since} .. {_iso(period.end)}), "
                    f"reconciled {_iso(period.reconciled_at)}",
                    f"give a span after {_iso(period.end)}; the reconciled periods are in "
                    f"{self.path}")

    def record(self, period: ReconciledPeriod) -> None:
        kept = [p for p in self.periods()
                if not (p.scope == period.scope and p.period_id == period.period_id)]
        kept.append(period)
        kept.sort(key=lambda p: (p.scope, p.end or datetime.max.replace(tzinfo=UTC)))
        data = {"version": STATE_VERSION, "periods": [p.as_dict() for p in kept]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".periods-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(data, file, indent=2)
                file.write("\n")
            os.replace(name, self.path)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise


# --- the completion notice ------------------------------------------------------------------

@dataclass(frozen=True)
class NoticeOutcome:
    url: str
    delivered: bool
    attempts: int
    status: int | None  # the last HTTP status, None when no answer came
    error: str | None

    def describe(self) -> str:
        if self.delivered:
            return f"notified {self.url} (HTTP {self.status}, attempt {self.attempts})"
        return f"could not notify {self.url} after {self.attempts} attempt(s): {self.error}"


def check_notify_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PeriodRuleError(f"--notify-url {url!r} is not an http(s) URL",
                              "give e.g. --notify-url https://backoffice.example/seqr")


def notify(url: str, payload: dict[str, Any], *, attempts: int = 3, timeout: float = 5.0,
           backoff: float = 0.5, sleep: Callable[[float], None] = time.sleep
           ) -> NoticeOutcome:
    """POST `payload` as JSON to `url`: delivered on a 2xx answer. A failed connection,
    a timeout, 408, 429 or a 5xx answer is tried again (up to `attempts` in all, waiting
    `backoff` seconds, then twice as long, ...); another answer is final."""
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": "application/json; charset=utf-8",
               "User-Agent": "seqr-client"}
    status: int | None = None
    error = "not attempted"
    tried = 0
    for attempt in range(1, max(attempts, 1) + 1):
        tried = attempt
        try:
            answer = requests.post(url, data=body, headers=headers, timeout=timeout)
        except requests.Timeout:
            status, error = None, f"no answer within {timeout:g} s"
        except requests.RequestException as failure:
            status, error = None, f"{type(failure).__name__}: {failure}"
        else:
            status = answer.status_code
            if 200 <= status < 300:
                return NoticeOutcome(url, True, attempt, status, None)
            error = f"HTTP {status}"
            if status not in (408, 429) and status < 500:
                break
        log.info("notify %s: attempt %d failed: %s", url, attempt, error)
        if attempt < attempts:
            sleep(backoff * 2 ** (attempt - 1))
    return NoticeOutcome(url, False, tried, status, error)

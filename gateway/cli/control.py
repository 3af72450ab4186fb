"""The admin API's features as `seqr-gateway` commands, straight on the database:
`requests`, `notifications`, `faults`, `clock`, `reset`, `seed`, `state`, `invoices`.

They print what the admin API answers (JSON), and work with or without a gateway running on
the same `--database-url`: its processes see each change within 50 ms, and a command that
changes something returns only after that.
"""

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway import clock
from gateway.config import Settings
from gateway.control import faults, fixtures, journal, state
from storage.database import Database
from storage.models import utcnow


def add_commands(commands: Any, env: Settings,
                 add_database: Callable[[argparse.ArgumentParser, Settings], None]) -> None:
    requests = commands.add_parser("requests", help="the request journal (SOAP exchanges)")
    add_database(requests, env)
    requests.add_argument("--operation")
    requests.add_argument("--terminal", help="terminalId of the caller")
    requests.add_argument("--principal", help="initiatorPrincipalId/id")
    requests.add_argument("--result-code", type=int)
    requests.add_argument("--since", help="ISO 8601 time, e.g. 2026-05-21T09:00:00Z")
    requests.add_argument("--limit", type=int, default=100)
    what = requests.add_mutually_exclusive_group()
    what.add_argument("--count", action="store_true", help="print only how many match")
    what.add_argument("--clear", action="store_true", help="empty the journal")

    notifications = commands.add_parser("notifications",
                                        help="the outgoing calls (notificationUrl attempts)")
    add_database(notifications, env)
    notifications.add_argument("--limit", type=int, default=100)

    rules = commands.add_parser("faults", help="fault injection rules: list, add, remove, clear")
    add_database(rules, env)
    rules.add_argument("action", choices=["list", "add", "remove", "clear"])
    rules.add_argument("rule_id", nargs="?", type=int, help="remove: the rule's id")
    for flag, kind, text in (
        ("--operation", str, "match this operation"),
        ("--principal", str, "match this principal id"),
        ("--terminal", str, "match this terminalId"),
        ("--nth", int, "only the Nth matching call"),
        ("--every", int, "every Nth matching call"),
        ("--times", int, "the next K matching calls"),
        ("--probability", float, "hit a matching call with this probability"),
        ("--effect", str, f"one of {', '.join(faults.EFFECTS)}"),
        ("--result-code", int, "effect result_code: the code to answer"),
        ("--http-status", int, "effect http_error: the HTTP status"),
        ("--delay-ms", int, "wait this long before answering (any effect)"),
        ("--polls", int, "effect report_not_ready: for this many polls"),
        ("--seconds", float, "effect report_not_ready: for this many seconds"),
        ("--expires-in", float, "the rule ends after this many seconds"),
    ):
        rules.add_argument(flag, type=kind, help=text)

    clock_ = commands.add_parser("clock", help="the emulator's clock: show, freeze, set, "
                                 "advance, resume, reset")
    add_database(clock_, env)
    clock_.add_argument("action", nargs="?", default="show",
                        choices=["show", "freeze", "set", "advance", "resume", "reset"])
    clock_.add_argument("value", nargs="?",
                        help="advance: seconds; set: ISO 8601 time with its offset")

    reset = commands.add_parser("reset", help="empty the state (everything, or one shop)")
    add_database(reset, env)
    reset.add_argument("--shop", help="only this shop's data")

    seed = commands.add_parser("seed", help="load a YAML or JSON fixture")
    add_database(seed, env)
    seed.add_argument("fixture", type=Path)
    seed.add_argument("--reset", action="store_true", help="reset everything first")

    summary = commands.add_parser("state", help="shops, terminals, open invoices, clock")
    add_database(summary, env)

    invoices = commands.add_parser("invoices", help="list invoices")
    add_database(invoices, env)
    invoices.add_argument("--shop")
    invoices.add_argument("--terminal")
    invoices.add_argument("--status")
    invoices.add_argument("--limit", type=int, default=100)


COMMANDS = ("requests", "notifications", "faults", "clock", "reset", "seed", "state", "invoices")


def run(args: argparse.Namespace, db: Database, settings: Settings) -> int:
    try:
        result = _HANDLERS[args.command](args, db, settings)
    except (faults.RuleError, fixtures.FixtureError, ValueError) as error:
        print(f"seqr-gateway {args.command}: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


def _requests(args: argparse.Namespace, db: Database, _settings: Settings) -> Any:
    journal.settle()  # the running gateways' queued entries first
    since = datetime.fromisoformat(args.since.replace("Z", "+00:00")) if args.since else None
    filters = journal.Filters(operation=args.operation, terminal=args.terminal,
                              principal=args.principal, result_code=args.result_code,
                              since=since)
    with journal.opened(db) as journal_db:
        if args.clear:
            with journal_db.write() as session:
                return {"deleted": journal.clear(session)}
        with journal_db.read() as session:
            if args.count:
                return {"count": journal.count(session, filters)}
            return [journal.describe(row)
                    for row in journal.entries(session, filters, args.limit)]


def _notifications(args: argparse.Namespace, db: Database, _settings: Settings) -> Any:
    with db.read() as session:
        return journal.notification_attempts(session, args.limit)


def _faults(args: argparse.Namespace, db: Database, _settings: Settings) -> Any:
    if args.action == "list":
        with db.read() as session:
            return [faults.describe(row) for row in faults.listed(session)]
    if args.action == "remove" and args.rule_id is None:
        raise ValueError("faults remove needs the rule's id")
    with db.write() as session:
        if args.action == "add":
            spec = {name: getattr(args, dest) for name, dest in _RULE_FLAGS.items()
                    if getattr(args, dest) is not None}
            result: Any = faults.describe(faults.add(session, spec))
        else:
            result = {"deleted": faults.clear(session, args.rule_id)}
    clock.settle()
    return result


_RULE_FLAGS = {  # the admin API's name: the argparse destination
    "operation": "operation", "principal": "principal", "terminal": "terminal",
    "nth": "nth", "every": "every", "times": "times", "probability": "probability",
    "effect": "effect", "resultCode": "result_code", "httpStatus": "http_status",
    "delayMs": "delay_ms", "polls": "polls", "seconds": "seconds", "expiresIn": "expires_in",
}


def _clock(args: argparse.Namespace, db: Database, _settings: Settings) -> Any:
    if args.action == "show":
        with db.read() as session:
            return clock.read_state(session).as_dict(utcnow())
    if args.action in ("advance", "set") and args.value is None:
        raise ValueError(f"clock {args.action} needs a value")
    seconds = float(args.value) if args.action == "advance" else None
    at = (datetime.fromisoformat(args.value.replace("Z", "+00:00"))
          if args.action == "set" else None)
    with db.write() as session:
        new = clock.change(session, args.action, seconds=seconds, at=at)
    clock.settle()
    return new.as_dict(utcnow())


def _reset(args: argparse.Namespace, db: Database, _settings: Settings) -> Any:
    journal.settle()
    with journal.opened(db) as journal_db:
        removed = state.reset(db, journal_db, args.shop)
    clock.settle()
    return {"reset": "shop" if args.shop else "everything", "shop": args.shop,
            "deleted": removed}


def seed_file(db: Database, settings: Settings, path: Path, *,
              reset: bool = False) -> dict[str, Any]:
    """Load a fixture file into the database (`seed`, and `serve --seed`)."""
    data = fixtures.parse(path.read_bytes())
    if reset:
        journal.settle()
    with journal.opened(db) as journal_db:
        seeded = state.seed(db, journal_db, data, settings.payment_rules, utcnow(),
                            reset_first=reset)
    clock.settle()
    return seeded.as_dict()


def _seed(args: argparse.Namespace, db: Database, settings: Settings) -> Any:
    return seed_file(db, settings, args.fixture, reset=args.reset)


def _state(_args: argparse.Namespace, db: Database, _settings: Settings) -> Any:
    journal.settle()
    with journal.opened(db) as journal_db:
        return state.summary(db, journal_db, utcnow())


def _invoices(args: argparse.Namespace, db: Database, _settings: Settings) -> Any:
    with db.read() as session:
        return state.invoices(session, shop=args.shop, terminal=args.terminal,
                              status=args.status, limit=args.limit)


_HANDLERS: dict[str, Callable[[argparse.Namespace, Database, Settings], Any]] = {
    "requests": _requests, "notifications": _notifications, "faults": _faults,
    "clock": _clock, "reset": _reset, "seed": _seed, "state": _state, "invoices": _invoices,
}

"""The tester's admin API under /admin/: JSON in and out, described at /admin/openapi.json.

Guarded, like the simulator, by `SEQR_ADMIN_TOKEN` when it is set (`Authorization: Bearer
<token>`). The rules live in `gateway.control` and `gateway.clock`; this module only routes,
reads and writes JSON. A change that every process must see (fault rules, the clock, a
reset) is answered only after `clock.REFRESH_SECONDS`, when every process has reread it.
"""

import json
import logging
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy.exc import DBAPIError

from gateway import clock
from gateway.config import Settings
from gateway.control import faults, fixtures, journal, state
from gateway.wire import guard, openapi
from storage.database import Database
from storage.models import utcnow

log = logging.getLogger(__name__)

PREFIX = "/admin"
StartResponse = Callable[..., Any]
Environ = dict[str, Any]
_FAULT_ID = re.compile(r"^/admin/faults/(\d+)/?$")


def authorised(environ: Environ, token: str | None) -> bool:
    """No token configured, or the request carries it as a bearer token."""
    return not token or guard.bearer_ok(environ, token)


class ApiError(Exception):
    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


def _bad(message: str) -> ApiError:
    return ApiError("400 Bad Request", message)


class Admin:
    def __init__(self, db: Database, settings: Settings, writer: journal.Writer) -> None:
        self.db = db
        self.settings = settings
        self.writer = writer  # this process's journal writer: flushed before reading
        self.routes: dict[tuple[str, str], Callable[[Environ], Any]] = {
            ("GET", "/admin/openapi.json"): lambda _e: openapi.DOCUMENT,
            ("GET", "/admin/requests"): self.requests,
            ("DELETE", "/admin/requests"): self.clear_requests,
            ("GET", "/admin/requests/count"): self.count_requests,
            ("GET", "/admin/notifications"): self.notifications,
            ("GET", "/admin/faults"): self.list_faults,
            ("POST", "/admin/faults"): self.add_fault,
            ("DELETE", "/admin/faults"): self.clear_faults,
            ("GET", "/admin/clock"): self.get_clock,
            ("POST", "/admin/clock"): self.set_clock,
            ("POST", "/admin/reset"): self.reset,
            ("POST", "/admin/seed"): self.seed,
            ("GET", "/admin/state"): self.state,
            ("GET", "/admin/invoices"): self.invoices,
        }

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if not authorised(environ, self.settings.admin_token):
            return _json(start_response, "401 Unauthorized", {"error": "bearer token required"},
                         [("WWW-Authenticate", 'Bearer realm="seqr-admin"')])
        path = environ.get("PATH_INFO", "").rstrip("/") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        handler = self.routes.get((method, path))
        fault_id = _FAULT_ID.match(path)
        if handler is None and fault_id and method == "DELETE":
            handler = lambda _e: self.clear_faults(_e, int(fault_id.group(1)))  # noqa: E731
        if handler is None:
            allowed = sorted(m for m, p in self.routes if p == path)
            if allowed:
                return _json(start_response, "405 Method Not Allowed",
                             {"error": f"use {' or '.join(allowed)}"},
                             [("Allow", ", ".join(allowed))])
            return _json(start_response, "404 Not Found", {"error": f"no such endpoint {path}"})
        try:
            return _json(start_response, "200 OK", handler(environ))
        except ApiError as error:
            return _json(start_response, error.status, {"error": str(error)})
        except (faults.RuleError, fixtures.FixtureError, ValueError) as error:
            return _json(start_response, "400 Bad Request", {"error": str(error)})
        except DBAPIError as error:
            log.warning("admin %s %s: database error: %s", method, path, error)
            return _json(start_response, "503 Service Unavailable",
                         {"error": "the database cannot be reached; try again"},
                         [("Retry-After", "1")])
        except Exception:
            log.exception("admin %s %s failed", method, path)
            return _json(start_response, "500 Internal Server Error", {"error": "internal error"})

    # --- the journal ---

    def requests(self, environ: Environ) -> Any:
        query = _query(environ)
        journal.settle(self.writer)
        with self.writer.db.read() as session:
            rows = journal.entries(session, _filters(query), _limit(query))
            return [journal.describe(row) for row in rows]

    def count_requests(self, environ: Environ) -> Any:
        journal.settle(self.writer)
        with self.writer.db.read() as session:
            return {"count": journal.count(session, _filters(_query(environ)))}

    def clear_requests(self, _environ: Environ) -> Any:
        journal.settle(self.writer)
        with self.writer.db.write() as session:
            return {"deleted": journal.clear(session)}

    def notifications(self, environ: Environ) -> Any:
        with self.db.read() as session:
            return journal.notification_attempts(session, _limit(_query(environ)))

    # --- fault rules ---

    def list_faults(self, _environ: Environ) -> Any:
        with self.db.read() as session:
            return [faults.describe(row) for row in faults.listed(session)]

    def add_fault(self, environ: Environ) -> Any:
        spec = _body_json(environ, self.settings.max_body_bytes)
        with self.db.write() as session:
            rule = faults.describe(faults.add(session, spec))
        clock.settle()
        return rule

    def clear_faults(self, _environ: Environ, rule_id: int | None = None) -> Any:
        with self.db.write() as session:
            deleted = faults.clear(session, rule_id)
        if rule_id is not None and not deleted:
            raise ApiError("404 Not Found", f"no fault rule {rule_id}")
        clock.settle()
        return {"deleted": deleted}

    # --- the clock ---

    def get_clock(self, _environ: Environ) -> Any:
        with self.db.read() as session:
            return clock.read_state(session).as_dict(utcnow())

    def set_clock(self, environ: Environ) -> Any:
        body = _body_json(environ, self.settings.max_body_bytes)
        if not isinstance(body, dict):
            raise _bad("send a JSON object such as {\"action\": \"advance\", \"seconds\": 20}")
        action = str(body.get("action"))
        seconds = body.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            seconds = None
        at = _time(body.get("at"), "at") if action == "set" else None
        try:
            with self.db.write() as session:
                new = clock.change(session, action, seconds=seconds, at=at)
        except ValueError as error:
            raise _bad(str(error)) from None
        clock.settle()
        return new.as_dict(utcnow())

    # --- the world ---

    def reset(self, environ: Environ) -> Any:
        body = _body_json(environ, self.settings.max_body_bytes, default={})
        shop = body.get("shop") if isinstance(body, dict) else None
        journal.settle(self.writer)  # entries of earlier calls go with the rest
        removed = state.reset(self.db, self.writer.db, shop)
        clock.settle()
        return {"reset": "shop" if shop else "everything", "shop": shop, "deleted": removed}

    def seed(self, environ: Environ) -> Any:
        text = _body(environ, self.settings.max_body_bytes)
        data = fixtures.parse(text)
        query = _query(environ)
        if _flag(query, "reset"):
            journal.settle(self.writer)
        seeded = state.seed(self.db, self.writer.db, data, self.settings.payment_rules,
                            utcnow(), reset_first=_flag(query, "reset"))
        clock.settle()
        return seeded.as_dict()

    def state(self, _environ: Environ) -> Any:
        journal.settle(self.writer)
        return state.summary(self.db, self.writer.db, utcnow())

    def invoices(self, environ: Environ) -> Any:
        query = _query(environ)
        with self.db.read() as session:
            return state.invoices(session, shop=query.get("shop"),
                                  terminal=query.get("terminal"), status=query.get("status"),
                                  limit=_limit(query))


# --- reading requests ---------------------------------------------------------------------------


def _query(environ: Environ) -> dict[str, str]:
    parsed = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=False)
    return {key: values[-1] for key, values in parsed.items()}


def _flag(query: dict[str, str], name: str) -> bool:
    return query.get(name, "").lower() in ("1", "true", "yes")


def _int(query: dict[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise _bad(f"{name} must be a whole number") from None


def _limit(query: dict[str, str]) -> int:
    limit = _int(query, "limit")
    if limit is None:
        return 100
    if not 1 <= limit <= 100_000:
        raise _bad("limit must be 1..100000")
    return limit


def _time(raw: Any, name: str) -> datetime:
    if not isinstance(raw, str):
        raise _bad(f"{name} must be an ISO 8601 time with its offset, e.g. 2026-05-21T09:12:00Z")
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"{name}: {raw!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise _bad(f"{name} needs its UTC offset (e.g. Z)")
    return value


def _filters(query: dict[str, str]) -> journal.Filters:
    injected = query.get("injected")
    return journal.Filters(
        operation=query.get("operation"), terminal=query.get("terminal"),
        principal=query.get("principal"), result_code=_int(query, "resultCode"),
        since=_time(query["since"], "since") if "since" in query else None,
        after_id=_int(query, "after"),
        injected=None if injected is None else _flag(query, "injected"),
    )


def _body(environ: Environ, limit: int) -> bytes:
    length = environ.get("CONTENT_LENGTH") or ""
    if length and not length.isdigit():
        raise _bad("bad Content-Length")
    if length and int(length) > limit:
        raise ApiError("413 Request Entity Too Large", f"body over {limit} bytes")
    stream = environ["wsgi.input"]
    data = stream.read(int(length)) if length else stream.read(limit + 1)
    if len(data) > limit:
        raise ApiError("413 Request Entity Too Large", f"body over {limit} bytes")
    return data  # type: ignore[no-any-return]


def _body_json(environ: Environ, limit: int, default: Any = None) -> Any:
    data = _body(environ, limit)
    if not data.strip():
        if default is not None:
            return default
        raise _bad("send a JSON body")
    try:
        return json.loads(data)
    except ValueError as error:
        raise _bad(f"not JSON: {error}") from None


def _json(start_response: StartResponse, status: str, body: Any,
          extra_headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    data = json.dumps(body).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    start_response(status, headers + (extra_headers or []))
    return [data]

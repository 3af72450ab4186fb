"""The web console at `/`: server-rendered pages over the domain modules.

    GET  /                      overview: endpoints, health, the demo shop, counts
    GET  /terminals             shops and their terminals, sticker QR codes
    POST /terminals/{seqrId}/pay        the buyer scans a till's sticker and pays
    GET  /phone                 the virtual phone: the newest invoices, their QR codes
    POST /phone/invoices/{ref}/{scan|pay|reserve|fail}
    GET  /periods               every scope's periods
    GET  /periods/{id}          a closed period and its six reports
    GET  /periods/{id}/{STD_RECON_00N}[.xml|.csv|.json][?terminal=...]
    GET  /login, POST /login, POST /logout      when SEQR_ADMIN_TOKEN is set
    GET  /static/{file}

Live parts of a page (`data-live`) are polled by static/console.js with `?fragment=1`:
the server answers 204 while the fragment is unchanged. (Polling rather than server-sent
events: a held-open stream would hold one of a worker's few threads for as long as a page
stays open.)
The console is on with the buyer simulator (`--no-simulator` switches both off) and is
guarded by the same admin token.
"""

import hashlib
import html
import json
import logging
import mimetypes
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, urlencode
from wsgiref.util import application_uri

import segno
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy.exc import DBAPIError

from gateway import browse, clock, payments, shops
from gateway.clock import Clock
from gateway.config import Settings
from gateway.control import faults, journal
from gateway.errors import SeqrError
from gateway.reports import tables
from gateway.wire import envelopes, guard, health
from gateway.wire.simulator import ACTIONS, run_buyer_action
from gateway.wire.simulator import PREFIX as SIMULATOR_PREFIX
from storage.database import Database
from storage.models import Invoice, JournalEntry, Terminal, utcnow
from wsdl.catalog import REPORTS, find_report
from wsdl.resultcodes import ResultCode

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]

_ROOTS = ("/login", "/logout", "/terminals", "/phone", "/periods", "/journal", "/control",
          "/static")
_INVOICE_ACTION = re.compile(r"^/phone/invoices/([0-9]{1,32})/(scan|pay|reserve|fail)$")
_STICKER_PAY = re.compile(r"^/terminals/([A-Za-z0-9]{1,64})/pay$")
_PERIOD = re.compile(r"^/periods/([0-9]{25})$")
_JOURNAL_ENTRY = re.compile(r"^/journal/([0-9]{1,18})$")
_FAULT_DELETE = re.compile(r"^/control/faults/([0-9]{1,18})/delete$")
#: how many calls the journal page lists, newest first
JOURNAL_ROWS = 100
_REPORT = re.compile(r"^/periods/([0-9]{25})/(STD_RECON_[0-9]{3})(?:\.(xml|csv|json))?$")
_STATIC = re.compile(r"^/static/([a-z0-9-]+\.(?:css|js|svg))$")
_MAX_FORM_BYTES = 16 * 1024
DOWNLOADS = {"xml": "application/xml", "csv": "text/csv; charset=utf-8",
             "json": "application/json"}

#: the navigation, in order: (path, label); the last two need the control plane (--no-admin)
PAGES = (("/", "Overview"), ("/terminals", "Shops and terminals"), ("/phone", "Phone"),
         ("/periods", "Periods and reports"), ("/journal", "Journal"),
         ("/control", "Faults and clock"))
CONTROL_PAGES = ("/journal", "/control")


@lru_cache(maxsize=2048)
def qr_svg(text: str) -> Markup:
    """A QR code as inline SVG (segno), labelled with its text for screen readers.

    Error correction M, as phone cameras read from screens and stickers; the quiet zone of
    four modules that the standard asks for. A reference's code never changes: cached."""
    code = segno.make_qr(text, error="m", boost_error=False)
    svg = code.svg_inline(scale=1, border=4, dark="#000", light="#fff", title=text,
                          svgclass="qr", lineclass=None, omitsize=True)
    label = html.escape(f"QR code: {text}", quote=True)
    return Markup(svg.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1))


@dataclass
class Request:
    environ: dict[str, Any]
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, environ: dict[str, Any]) -> "Request":
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        return cls(environ, environ.get("REQUEST_METHOD", "GET"),
                   environ.get("PATH_INFO", "") or "/", query)

    @property
    def wants_json(self) -> bool:
        return "application/json" in self.environ.get("HTTP_ACCEPT", "")

    @property
    def base_url(self) -> str:
        return application_uri(self.environ).rstrip("/")

    def read_form(self) -> None:
        length = self.environ.get("CONTENT_LENGTH") or "0"
        size = min(int(length) if length.isdigit() else 0, _MAX_FORM_BYTES)
        body = self.environ["wsgi.input"].read(size) if size else b""
        self.form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


@dataclass
class Response:
    status: str
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def send(self, start_response: StartResponse) -> Iterable[bytes]:
        headers = [("Content-Type", self.content_type), ("Content-Length", str(len(self.body))),
                   ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
                   ("X-Frame-Options", "DENY"), ("Referrer-Policy", "same-origin")]
        start_response(self.status, headers + self.headers)
        return [self.body]


def _redirect(location: str, extra: list[tuple[str, str]] | None = None) -> Response:
    return Response("303 See Other", headers=[("Location", location), *(extra or [])])


def _json(status: str, value: Any) -> Response:
    return Response(status, json.dumps(value).encode(), "application/json")


def _safe_next(target: str | None) -> str:
    """Only a path of this site (no scheme, no //host) may follow a login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


class Console:
    def __init__(self, db: Database, settings: Settings, clock: Clock,
                 journal_db: Database) -> None:
        self.db = db
        self.journal_db = journal_db  # where the journal is kept (`journal.database`)
        self.settings = settings
        self.clock = clock  # the emulator's time (virtual when a tester set it)
        self.rules = settings.payment_rules
        self.templates = Environment(
            loader=PackageLoader("gateway.wire", "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True, lstrip_blocks=True,
        )
        self.templates.globals.update(qr_svg=qr_svg, ACTIONS=payments.BUYER_ACTIONS,
                                      money=_money, when=_when, code_name=_code_name)
        self._demo_checked: tuple[bool, str | None] | None = None
        self.pages = tuple(page for page in PAGES
                           if settings.admin or page[0] not in CONTROL_PAGES)

    @staticmethod
    def handles(path: str) -> bool:
        return path == "/" or any(path == root or path.startswith(root + "/")
                                  for root in _ROOTS)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = Request.of(environ)
        try:
            response = self._dispatch(request)
        except DBAPIError as error:
            log.warning("console %s %s: database error: %s", request.method, request.path, error)
            response = self._error(request, "503 Service Unavailable",
                                   "The database cannot be reached; try again.")
        except Exception:
            log.exception("console %s %s failed", request.method, request.path)
            response = self._error(request, "500 Internal Server Error", "Internal error.")
        return response.send(start_response)

    # --- routing -----------------------------------------------------------------------------

    def _dispatch(self, request: Request) -> Response:
        path, method = request.path, request.method
        static = _STATIC.match(path)
        if static:
            return self._static(static.group(1))
        if path == "/login":
            return self._login(request)
        if not guard.allowed(request.environ, self.settings.admin_token):
            if method == "GET" and "fragment" not in request.query and not request.wants_json:
                return _redirect("/login?" + urlencode({"next": self._here(request)}))
            return _json("401 Unauthorized", {"error": "log in with the admin token"})
        if method == "POST":
            request.read_form()
            return self._post(request)
        if method not in ("GET", "HEAD"):
            return Response("405 Method Not Allowed", b"", headers=[("Allow", "GET, POST")])
        if path == "/":
            return self._live(request, "overview.html", self._overview)
        if path == "/terminals":
            return self._live(request, "terminals.html", self._terminals)
        if path == "/phone":
            return self._live(request, "phone.html", self._phone)
        if path == "/periods":
            return self._live(request, "periods.html", self._periods)
        if self.settings.admin:
            if path == "/journal":
                return self._live(request, "journal.html", self._journal)
            entry = _JOURNAL_ENTRY.match(path)
            if entry:
                return self._journal_entry(request, int(entry.group(1)))
            if path == "/control":
                return self._live(request, "control.html", self._control)
        period = _PERIOD.match(path)
        if period:
            return self._period(request, period.group(1))
        report = _REPORT.match(path)
        if report:
            return self._report(request, *report.groups())
        return self._error(request, "404 Not Found", f"No page {path}.")

    def _post(self, request: Request) -> Response:
        path = request.path
        if path == "/logout":
            return _redirect("/login", [("Set-Cookie", guard.logout_cookie())])
        invoice = _INVOICE_ACTION.match(path)
        if invoice:
            reference, action = invoice.groups()
            return self._buyer(request, action, lambda s, now: ACTIONS[action](
                s, reference, self.rules, now))
        sticker = _STICKER_PAY.match(path)
        if sticker:
            return self._buyer(request, "pay", lambda s, now: payments.pay_by_seqr_id(
                s, sticker.group(1), self.rules, now))
        if self.settings.admin:
            if path == "/control/faults":
                return self._add_fault(request)
            if path == "/control/faults/clear":
                return self._clear_faults(request, None)
            deleted = _FAULT_DELETE.match(path)
            if deleted:
                return self._clear_faults(request, int(deleted.group(1)))
            if path == "/control/clock":
                return self._set_clock(request)
        return self._error(request, "404 Not Found", f"No action {path}.")

    @staticmethod
    def _here(request: Request) -> str:
        query = request.environ.get("QUERY_STRING", "")
        return request.path + ("?" + query if query else "")

    # --- pages -------------------------------------------------------------------------------

    def _render(self, template: str, request: Request, **context: Any) -> str:
        return self.templates.get_template(template).render(
            path=request.path, token_required=bool(self.settings.admin_token),
            notice=request.query.get("notice"), pages=self.pages, **context)

    def _page(self, request: Request, template: str, status: str = "200 OK",
              **context: Any) -> Response:
        return Response(status, self._render(template, request, **context).encode())

    def _live(self, request: Request, template: str,
              context: Callable[[Request], dict[str, Any]]) -> Response:
        """A page with a live part; `?fragment=1` answers that part alone (204: unchanged)."""
        values = context(request)
        if "fragment" not in request.query:
            return self._page(request, template, **values)
        fragment = template.replace(".html", "_live.html")
        body = self.templates.get_template(fragment).render(path=request.path, **values)
        data = body.strip().encode()
        stamp = hashlib.sha256(data).hexdigest()[:16]
        if request.query.get("stamp") == stamp:
            return Response("204 No Content", headers=[("X-Stamp", stamp)])
        return Response("200 OK", data, headers=[("X-Stamp", stamp)])

    def _error(self, request: Request, status: str, message: str) -> Response:
        if request.wants_json or "fragment" in request.query:
            return _json(status, {"error": message})
        try:
            return self._page(request, "error.html", status, heading=status, message=message)
        except Exception:  # the error page itself failed: plain text
            log.exception("console error page failed")
            return Response(status, message.encode(), "text/plain; charset=utf-8")

    def _static(self, name: str) -> Response:
        resource = resources.files("gateway.wire") / "static" / name
        if not resource.is_file():
            return Response("404 Not Found", b"no such file\n", "text/plain; charset=utf-8")
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("javascript"):
            kind += "; charset=utf-8"
        response = Response("200 OK", resource.read_bytes(), kind)
        return response

    def _login(self, request: Request) -> Response:
        token = self.settings.admin_token
        target = _safe_next(request.query.get("next"))
        if not token:
            return _redirect(target)
        if request.method == "POST":
            request.read_form()
            target = _safe_next(request.form.get("next"))
            if guard.token_ok(request.form.get("token", ""), token):
                secure = request.environ.get("wsgi.url_scheme") == "https"
                return _redirect(target, [("Set-Cookie", guard.login_cookie(token, secure))])
            return self._page(request, "login.html", "401 Unauthorized", next=target,
                              error="That is not the admin token.")
        if request.method not in ("GET", "HEAD"):
            return Response("405 Method Not Allowed", headers=[("Allow", "GET, POST")])
        return self._page(request, "login.html", next=target, error=None)

    def _overview(self, request: Request) -> dict[str, Any]:
        healthy, report = health.check(self.db)
        counts = demo = None
        if healthy:
            with self.db.read() as session:
                counts = browse.counts(session)
            demo = self._demo_credentials()
        base = request.base_url
        control = self._control(request) if healthy and self.settings.admin else None
        return {
            "base": base, "healthy": healthy, "health": report, "counts": counts,
            "demo": demo, "settings": self.settings, "simulator": base + SIMULATOR_PREFIX,
            "control": control,
        }

    def _demo_credentials(self) -> dict[str, str] | None:
        """The demo shop's credentials while its password is the demo one. Checking costs a
        scrypt hash: done once per process (a changed password shows after a restart)."""
        if self._demo_checked is None:
            with self.db.read() as session:
                works = shops.password_is(session, shops.DEMO_RESELLER_ID, shops.DEMO_USER_ID,
                                          self.settings.demo_password)
            self._demo_checked = (works, self.settings.demo_password if works else None)
        works, password = self._demo_checked
        if not works or password is None:
            return None
        return {"reseller_id": shops.DEMO_RESELLER_ID, "user_id": shops.DEMO_USER_ID,
                "password": password}

    def _terminals(self, request: Request) -> dict[str, Any]:
        with self.db.read() as session:
            return {"shops": browse.shops(session, self.rules, self.clock.now())}

    def _phone(self, request: Request) -> dict[str, Any]:
        terminal_id = request.query.get("terminal") or None
        with self.db.read() as session:
            invoices = browse.recent_invoices(session, self.rules, self.clock.now(), terminal_id)
            # the filter's choices: only for the whole page, not for its live part
            terminals = [] if "fragment" in request.query else browse.all_terminals(session)
        return {"invoices": invoices, "terminals": terminals, "terminal_id": terminal_id,
                "live_query": urlencode({"terminal": terminal_id} if terminal_id else {})}

    def _periods(self, request: Request) -> dict[str, Any]:
        with self.db.read() as session:
            return {"scopes": browse.scopes(session)}

    def _period(self, request: Request, public_id: str) -> Response:
        with self.db.read() as session:
            period = browse.closed_period(session, public_id)
            if period is None:
                return self._error(request, "404 Not Found", f"No closed period {public_id}.")
            terminal = session.get(Terminal, period.terminal_id) if period.terminal_id else None
            tills = browse.shop_terminals(session, period.reseller_id)
            view = browse.period_view(session, period)
        return self._page(request, "period.html", period=period, terminal=terminal,
                          terminals=tills, reports=list(REPORTS.values()), view=view)

    def _report(self, request: Request, public_id: str, report_id: str,
                fmt: str | None) -> Response:
        spec = find_report(report_id)
        if spec is None:
            return self._error(request, "404 Not Found", f"No report {report_id}.")
        with self.db.read() as session:
            period = browse.closed_period(session, public_id)
            if period is None:
                return self._error(request, "404 Not Found", f"No closed period {public_id}.")
            try:
                scope = tables.scope(session, spec, period,
                                     request.query.get("terminal") or None)
            except SeqrError as error:
                return self._error(request, "400 Bad Request", error.detail or str(error))
            table = tables.table(session, scope, self.clock.now())
        if fmt is not None:
            if fmt == "xml":
                body = table.content
            elif fmt == "csv":
                body = tables.to_csv(table).encode()
            else:
                body = json.dumps(tables.to_json(table), indent=2).encode()
            disposition = f'attachment; filename="{table.filename}.{fmt}"'
            return Response("200 OK", body, DOWNLOADS[fmt],
                            [("Content-Disposition", disposition)])
        query = request.environ.get("QUERY_STRING", "")
        return self._page(request, "report.html", table=table, period=period,
                          query=("?" + query) if query else "")

    # --- the control plane: journal, fault rules, clock ----------------------------------------

    def _journal_filters(self, request: Request) -> tuple[journal.Filters, dict[str, str]]:
        query = request.query
        given = {key: query[key].strip() for key in ("operation", "terminal", "principal",
                                                     "resultCode", "deviations", "injected")
                 if query.get(key, "").strip()}
        code = given.get("resultCode")
        if code is not None and not code.lstrip("-").isdigit():
            given.pop("resultCode")
            code = None
        return journal.Filters(
            operation=given.get("operation"), terminal=given.get("terminal"),
            principal=given.get("principal"),
            result_code=int(code) if code is not None else None,
            deviations=True if given.get("deviations") else None,
            injected=True if given.get("injected") else None,
        ), given

    def _journal(self, request: Request) -> dict[str, Any]:
        filters, given = self._journal_filters(request)
        with self.journal_db.read() as session:
            rows = list(reversed(journal.entries(session, filters, JOURNAL_ROWS)))
            operations = journal.operations(session)
            total = journal.count(session, filters)
        entries = [{"row": row, "deviations": json.loads(row.deviations) if row.deviations
                    else []} for row in rows]
        return {"entries": entries, "operations": operations, "given": given, "total": total,
                "journal_on": self.settings.journal_size > 0,
                "live_query": urlencode(given)}

    def _journal_entry(self, request: Request, entry_id: int) -> Response:
        with self.journal_db.read() as session:
            row = session.get(JournalEntry, entry_id)
            if row is None:
                return self._error(request, "404 Not Found",
                                   f"No journal entry {entry_id} (the oldest are dropped).")
            entry = journal.describe(row)
        marks = envelopes.targets(entry["deviations"])
        return self._page(request, "journal_entry.html", entry=entry,
                          request_lines=envelopes.pretty(entry["request"], marks),
                          response_lines=envelopes.pretty(entry["response"]))

    def _control(self, request: Request) -> dict[str, Any]:
        with self.db.read() as session:
            rules = [faults.describe(row) for row in faults.listed(session)]
            state = clock.read_state(session)
        real = utcnow()
        return {"rules": rules, "clock": state.as_dict(real), "clock_state": state,
                "clock_now": state.at(real), "effects": faults.EFFECTS}

    def _add_fault(self, request: Request) -> Response:
        try:
            spec = fault_spec(request.form)
            with self.db.write() as session:
                rule = faults.add(session, spec)
                rule_id = rule.id
        except faults.RuleError as error:
            return self._answer(request, "400 Bad Request", f"Rule not added: {error}.", None)
        clock.settle()  # every process applies it from now on
        return self._answer(request, "200 OK", f"Fault rule {rule_id} added.", None)

    def _clear_faults(self, request: Request, rule_id: int | None) -> Response:
        with self.db.write() as session:
            deleted = faults.clear(session, rule_id)
        clock.settle()
        if rule_id is not None and not deleted:
            return self._answer(request, "404 Not Found", f"No fault rule {rule_id}.", None)
        what = f"Fault rule {rule_id}" if rule_id is not None else f"{deleted} fault rules"
        return self._answer(request, "200 OK", f"{what} deleted.", None)

    def _set_clock(self, request: Request) -> Response:
        form = request.form
        action = form.get("action", "")
        try:
            seconds = float(form.get("seconds", "")) if action == "advance" else None
            at = _utc(form.get("at", "")) if action == "set" else None
            with self.db.write() as session:
                new = clock.change(session, action, seconds=seconds, at=at)
        except ValueError as error:
            return self._answer(request, "400 Bad Request", f"Clock not changed: {error}.",
                                None)
        clock.settle()
        shown = new.at(utcnow()).strftime("%Y-%m-%d %H:%M:%S UTC")
        state = "frozen" if new.frozen_at is not None else "running"
        return self._answer(request, "200 OK", f"Clock {state}: it is {shown}.", None)

    # --- the buyer's actions -----------------------------------------------------------------

    def _buyer(self, request: Request, action: str,
               run: Callable[[Any, datetime], Invoice]) -> Response:
        try:
            row = run_buyer_action(self.db, run, self.clock.now)
        except payments.BuyerActionError as error:
            status = "404 Not Found" if error.not_found else "409 Conflict"
            return self._answer(request, status, str(error), None)
        message = f"{action.capitalize()}: invoice {row.reference} is {row.status} (version " \
                  f"{row.version})."
        return self._answer(request, "200 OK", message, row)

    def _answer(self, request: Request, status: str, message: str,
                row: Invoice | None) -> Response:
        """JSON for the page's script; a redirect back with the message without it."""
        if request.wants_json:
            value: dict[str, Any] = {"message": message}
            if row is not None:
                value.update(invoiceReference=row.reference, status=row.status,
                             version=row.version)
            if not status.startswith("2"):
                value["error"] = message
            return _json(status, value)
        back = _safe_next(request.form.get("back"))
        path, _, anchor = back.partition("#")
        separator = "&" if "?" in path else "?"
        location = f"{path}{separator}notice={quote(message)}" + (f"#{anchor}" if anchor else "")
        return _redirect(location)


def fault_spec(form: dict[str, str]) -> dict[str, Any]:
    """The console's fault form as the admin API's rule (`faults.add` checks it)."""
    spec: dict[str, Any] = {"effect": form.get("effect", "").strip()}
    for name in ("operation", "principal", "terminal"):
        value = form.get(name, "").strip()
        if value:
            spec[name] = value
    which = form.get("which", "all")
    count = form.get("count", "").strip()
    if which in ("nth", "every", "times"):
        spec[which] = _number(count, which, int)
    elif which == "probability":
        spec["probability"] = _number(count, "probability", float)
    numbers = {"resultCode": int, "httpStatus": int, "delayMs": int, "polls": int,
               "seconds": float, "expiresIn": float}
    for name, kind in numbers.items():
        value = form.get(name, "").strip()
        belongs = _EFFECT_FIELDS.get(name)
        if value and (belongs is None or spec["effect"] in belongs):
            spec[name] = _number(value, name, kind)
    return spec


#: the form's fields that only one effect reads (the others are left out of its rule)
_EFFECT_FIELDS = {"resultCode": (faults.RESULT_CODE,), "httpStatus": (faults.HTTP_ERROR,),
                  "polls": (faults.REPORT_NOT_READY,), "seconds": (faults.REPORT_NOT_READY,)}


def _number(text: str, name: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise faults.RuleError(f"{name} must be a number, not {text!r}") from None


def _utc(text: str) -> datetime:
    """A time typed in the form (`2026-05-21T09:12` or with seconds), read as UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _code_name(code: int | None) -> str:
    if code is None:
        return ""
    try:
        return ResultCode(code).name
    except ValueError:
        return "unknown"


def _money(value: Any) -> str:
    """An amount as people read it: at least two decimals, no trailing zeros beyond them."""
    if value is None:
        return ""
    text = f"{value:f}"
    if "." in text:
        whole, decimals = text.split(".")
        decimals = decimals.rstrip("0").ljust(2, "0")
        return f"{whole}.{decimals}"
    return f"{text}.00"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""

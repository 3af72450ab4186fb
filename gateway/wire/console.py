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
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, urlencode
from wsgiref.util import application_uri

import segno
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy.exc import DBAPIError

from gateway import browse, payments, shops
from gateway.clock import Clock
from gateway.config import Settings
from gateway.errors import SeqrError
from gateway.reports import tables
from gateway.wire import guard, health
from gateway.wire.simulator import ACTIONS, run_buyer_action
from gateway.wire.simulator import PREFIX as SIMULATOR_PREFIX
from storage.database import Database
from storage.models import Invoice, Terminal
from wsdl.catalog import REPORTS, find_report

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]

_ROOTS = ("/login", "/logout", "/terminals", "/phone", "/periods", "/static")
_INVOICE_ACTION = re.compile(r"^/phone/invoices/([0-9]{1,32})/(scan|pay|reserve|fail)$")
_STICKER_PAY = re.compile(r"^/terminals/([A-Za-z0-9]{1,64})/pay$")
_PERIOD = re.compile(r"^/periods/([0-9]{25})$")
_REPORT = re.compile(r"^/periods/([0-9]{25})/(STD_RECON_[0-9]{3})(?:\.(xml|csv|json))?$")
_STATIC = re.compile(r"^/static/([a-z0-9-]+\.(?:css|js|svg))$")
_MAX_FORM_BYTES = 16 * 1024
DOWNLOADS = {"xml": "application/xml", "csv": "text/csv; charset=utf-8",
             "json": "application/json"}

#: the navigation, in order: (path, label)
PAGES = (("/", "Overview"), ("/terminals", "Shops and terminals"), ("/phone", "Phone"),
         ("/periods", "Periods and reports"))


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
    def __init__(self, db: Database, settings: Settings, clock: Clock) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock  # the emulator's time (virtual when a tester set it)
        self.rules = settings.payment_rules
        self.templates = Environment(
            loader=PackageLoader("gateway.wire", "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True, lstrip_blocks=True,
        )
        self.templates.globals.update(qr_svg=qr_svg, PAGES=PAGES, ACTIONS=payments.BUYER_ACTIONS,
                                      money=_money, when=_when)
        self._demo_checked: tuple[bool, str | None] | None = None

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
            return self._page(request, "overview.html", **self._overview(request))
        if path == "/terminals":
            return self._live(request, "terminals.html", self._terminals)
        if path == "/phone":
            return self._live(request, "phone.html", self._phone)
        if path == "/periods":
            return self._live(request, "periods.html", self._periods)
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
        return self._error(request, "404 Not Found", f"No action {path}.")

    @staticmethod
    def _here(request: Request) -> str:
        query = request.environ.get("QUERY_STRING", "")
        return request.path + ("?" + query if query else "")

    # --- pages -------------------------------------------------------------------------------

    def _render(self, template: str, request: Request, **context: Any) -> str:
        return self.templates.get_template(template).render(
            path=request.path, token_required=bool(self.settings.admin_token),
            notice=request.query.get("notice"), **context)

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
        return {
            "base": base, "healthy": healthy, "health": report, "counts": counts,
            "demo": demo, "settings": self.settings, "simulator": base + SIMULATOR_PREFIX,
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
            else:
                value["error"] = message
            return _json(status, value)
        back = _safe_next(request.form.get("back"))
        path, _, anchor = back.partition("#")
        separator = "&" if "?" in path else "?"
        location = f"{path}{separator}notice={quote(message)}" + (f"#{anchor}" if anchor else "")
        return _redirect(location)


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

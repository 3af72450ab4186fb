"""A Python helper for the emulator's admin API (/admin/) and buyer simulator (/simulator/).

Only the emulator has these endpoints (a real SEQR does not): they are for integration
tests. The helper speaks plain HTTP and JSON; it imports nothing of the gateway.

    admin = Admin("http://127.0.0.1:8080")
    admin.reset(); admin.seed("fixture.yaml")
    admin.faults.add(operation="getPaymentStatus", nth=3, effect="result_code", resultCode=94)
    admin.clock.freeze(); admin.clock.advance(20)
    admin.pay(invoice_reference)
    assert admin.count(operation="getPaymentStatus") == 3
    admin.journal(operation="sendInvoice")[-1]["resultCode"]
"""

import json
from pathlib import Path
from typing import Any

import requests


class AdminError(Exception):
    """The admin API refused a request (`status`, and its `error` text)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class Admin:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.faults = Faults(self)
        self.clock = Clock(self)

    def call(self, method: str, path: str, body: Any = None, *, data: bytes | None = None,
             content_type: str = "application/json", **params: Any) -> Any:
        query = {_camel(k): _text(v) for k, v in params.items() if v is not None}
        if body is not None:
            data = json.dumps(body).encode()
        answer = self.session.request(method, self.base_url + path, params=query, data=data,
                                      headers={"Content-Type": content_type},
                                      timeout=self.timeout)
        try:
            payload = answer.json()
        except ValueError:
            payload = {"error": answer.text}
        if answer.status_code >= 400:
            raise AdminError(answer.status_code,
                             payload.get("error", "") if isinstance(payload, dict) else "")
        return payload

    # --- the journal ---

    def journal(self, *, operation: str | None = None, terminal: str | None = None,
                principal: str | None = None, result_code: int | None = None,
                since: str | None = None, after: int | None = None,
                injected: bool | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """The SOAP exchanges that match, oldest first (the newest `limit`, 100 by default)."""
        return self.call("GET", "/admin/requests", operation=operation, terminal=terminal,
                         principal=principal, result_code=result_code, since=since,
                         after=after, injected=injected, limit=limit)

    def count(self, *, operation: str | None = None, terminal: str | None = None,
              principal: str | None = None, result_code: int | None = None,
              since: str | None = None, after: int | None = None,
              injected: bool | None = None) -> int:
        """How many SOAP exchanges match: "verify it was called N times"."""
        return int(self.call("GET", "/admin/requests/count", operation=operation,
                             terminal=terminal, principal=principal, result_code=result_code,
                             since=since, after=after, injected=injected)["count"])

    def clear_journal(self) -> int:
        return int(self.call("DELETE", "/admin/requests")["deleted"])

    def notifications(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The notificationUrl calls made, oldest first."""
        return self.call("GET", "/admin/notifications", limit=limit)

    # --- the world ---

    def reset(self, shop: str | None = None) -> dict[str, Any]:
        """Empty everything (journal, fault rules and clock too), or one shop's data."""
        return self.call("POST", "/admin/reset", {"shop": shop} if shop else {})

    def seed(self, fixture: "str | Path | dict[str, Any]", *,
             reset: bool = False) -> dict[str, Any]:
        """Load a fixture: a dict, or a YAML/JSON file (a path). Returns the ids it made."""
        if isinstance(fixture, dict):
            data = json.dumps(fixture).encode()
        else:
            data = Path(fixture).read_bytes()
        return self.call("POST", "/admin/seed", data=data, content_type="application/yaml",
                         reset=reset or None)

    def state(self) -> dict[str, Any]:
        return self.call("GET", "/admin/state")

    def invoices(self, *, shop: str | None = None, terminal: str | None = None,
                 status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        return self.call("GET", "/admin/invoices", shop=shop, terminal=terminal,
                         status=status, limit=limit)

    # --- the buyer (the simulator) ---

    def pay(self, invoice_reference: str) -> dict[str, Any]:
        return self._buyer(f"invoices/{invoice_reference}/pay")

    def pay_seqr_id(self, seqr_id: str) -> dict[str, Any]:
        """Pay the till's newest open invoice, as scanning its sticker does."""
        return self._buyer(f"seqr-ids/{seqr_id}/pay")

    def scan(self, invoice_reference: str) -> dict[str, Any]:
        return self._buyer(f"invoices/{invoice_reference}/scan")

    def reserve(self, invoice_reference: str) -> dict[str, Any]:
        return self._buyer(f"invoices/{invoice_reference}/reserve")

    def fail(self, invoice_reference: str) -> dict[str, Any]:
        return self._buyer(f"invoices/{invoice_reference}/fail")

    def _buyer(self, path: str) -> dict[str, Any]:
        return self.call("POST", "/simulator/" + path)


class Faults:
    def __init__(self, admin: Admin) -> None:
        self.admin = admin

    def add(self, **rule: Any) -> dict[str, Any]:
        """A new fault rule: `operation`, `principal`, `terminal`; `nth`, `every`, `times`,
        `probability`; `effect` (result_code, http_error, delay, drop, report_not_ready,
        render_fails) with `result_code`, `http_status`, `delay_ms`, `polls`, `seconds`;
        `expires_in`. Python or the API's spelling (`resultCode`) alike."""
        return self.admin.call("POST", "/admin/faults",
                               {_camel(k): v for k, v in rule.items() if v is not None})

    def list(self) -> list[dict[str, Any]]:
        return self.admin.call("GET", "/admin/faults")

    def clear(self) -> int:
        return int(self.admin.call("DELETE", "/admin/faults")["deleted"])

    def remove(self, rule_id: int) -> None:
        self.admin.call("DELETE", f"/admin/faults/{rule_id}")


class Clock:
    def __init__(self, admin: Admin) -> None:
        self.admin = admin

    def get(self) -> dict[str, Any]:
        return self.admin.call("GET", "/admin/clock")

    def _change(self, action: str, **extra: Any) -> dict[str, Any]:
        return self.admin.call("POST", "/admin/clock", {"action": action, **extra})

    def freeze(self) -> dict[str, Any]:
        return self._change("freeze")

    def advance(self, seconds: float) -> dict[str, Any]:
        return self._change("advance", seconds=seconds)

    def set(self, at: str) -> dict[str, Any]:
        """`at`: an ISO 8601 time with its offset, e.g. 2026-05-21T09:12:00Z."""
        return self._change("set", at=at)

    def resume(self) -> dict[str, Any]:
        return self._change("resume")

    def reset(self) -> dict[str, Any]:
        return self._change("reset")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _text(value: Any) -> Any:
    return ("true" if value else "false") if isinstance(value, bool) else value

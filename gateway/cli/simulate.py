"""`seqr-gateway simulate`: the buyer's actions against a running gateway's simulator."""

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

#: how often `--wait` asks again whether the till has an invoice open
WAIT_STEP = 0.25


def simulate(gateway_url: str, action: str, invoice_reference: str | None,
             seqr_id: str | None, admin_token: str | None, wait: float = 0.0) -> int:
    """Print the invoice's new state as JSON; exit 0, 1 when refused (4xx), 2 on a usage
    error, an unreachable or failing (5xx) gateway, or an answer that is not JSON.

    With `seqr_id` the action reaches the till's newest open invoice, as scanning its sticker
    does; `wait` seconds are given to a till that has no invoice open yet."""
    if seqr_id and invoice_reference:
        print("name an INVOICE_REF or --seqr-id ID, not both", file=sys.stderr)
        return 2
    if seqr_id:
        path = f"/simulator/seqr-ids/{urllib.parse.quote(seqr_id, safe='')}/{action}"
    elif invoice_reference:
        path = f"/simulator/invoices/{urllib.parse.quote(invoice_reference, safe='')}/{action}"
    else:
        print("name an INVOICE_REF, or the till's sticker with --seqr-id ID", file=sys.stderr)
        return 2
    parts = urllib.parse.urlsplit(gateway_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        print(f"--gateway-url {gateway_url!r} is not an http(s) URL: give the gateway's "
              "address, e.g. http://127.0.0.1:8080", file=sys.stderr)
        return 2
    deadline = time.monotonic() + wait
    while True:
        status, answer, text = _post(gateway_url, path, admin_token)
        nothing_open = status == 409 and isinstance(answer, dict) and \
            answer.get("status") is None and seqr_id is not None
        if nothing_open and time.monotonic() < deadline:
            time.sleep(min(WAIT_STEP, max(0.0, deadline - time.monotonic())))
            continue
        break
    if status == 0:
        print(f"cannot reach the gateway at {gateway_url}: {text}", file=sys.stderr)
        return 2
    if status >= 400:
        message = answer.get("error", text) if isinstance(answer, dict) else text.strip()
        if status >= 500:  # not a refusal: the gateway (or its database) is in trouble
            print(f"gateway error ({status}): {message}", file=sys.stderr)
            return 2
        print(f"refused ({status}): {message}", file=sys.stderr)
        hint = _hint(status, answer, parts.path, seqr_id, wait)
        if hint:
            print(f"what to do: {hint}", file=sys.stderr)
        return 1
    if not isinstance(answer, dict):  # something else answers at that URL
        print(f"not a SEQR gateway at {gateway_url}: its answer is not JSON: "
              f"{text[:200]!r}", file=sys.stderr)
        return 2
    print(json.dumps(answer, indent=2))
    return 0


def _post(gateway_url: str, path: str, admin_token: str | None) -> tuple[int, Any, str]:
    """(HTTP status, the answer's JSON or None, its text); status 0 when nothing answered."""
    request = urllib.request.Request(gateway_url.rstrip("/") + path, data=b"", method="POST")
    if admin_token:
        request.add_header("Authorization", f"Bearer {admin_token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        return 0, None, str(getattr(error, "reason", error))
    text = body.decode("utf-8", "replace")
    try:
        return status, json.loads(text), text
    except ValueError:
        return status, None, text


def _hint(status: int, answer: Any, url_path: str, seqr_id: str | None,
          wait: float) -> str | None:
    if status == 404 and not isinstance(answer, dict) and url_path.strip("/"):
        return (f"--gateway-url is the gateway's address without a path (not the SOAP "
                f"endpoint): drop {url_path!r}, e.g. http://127.0.0.1:8080")
    if status == 401:
        return "set SEQR_ADMIN_TOKEN to the gateway's admin token"
    if status == 409 and seqr_id and isinstance(answer, dict) and answer.get("status") is None:
        return ("the till has no invoice open: send one first, or give it time with --wait "
                f"SECONDS (waited {wait:g} s)")
    return None

"""`seqr-gateway simulate`: the buyer's actions against a running gateway's simulator."""

import json
import sys
import urllib.error
import urllib.parse
import urllib.request


def simulate(gateway_url: str, action: str, invoice_reference: str | None,
             seqr_id: str | None, admin_token: str | None) -> int:
    """Print the invoice's new state as JSON; exit 0, 1 when refused (4xx), 2 on a usage
    error, an unreachable or failing (5xx) gateway, or an answer that is not JSON."""
    if seqr_id and invoice_reference:
        print("name an INVOICE_REF or --seqr-id ID, not both", file=sys.stderr)
        return 2
    if seqr_id:
        if action != "pay":
            print("--seqr-id works with `pay` only", file=sys.stderr)
            return 2
        path = f"/simulator/seqr-ids/{urllib.parse.quote(seqr_id, safe='')}/pay"
    elif invoice_reference:
        path = f"/simulator/invoices/{urllib.parse.quote(invoice_reference, safe='')}/{action}"
    else:
        print("name an INVOICE_REF, or --seqr-id ID with pay", file=sys.stderr)
        return 2
    request = urllib.request.Request(gateway_url.rstrip("/") + path, data=b"", method="POST")
    if admin_token:
        request.add_header("Authorization", f"Bearer {admin_token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", "replace")
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        message = answer.get("error", text) if isinstance(answer, dict) else text.strip()
        if error.code >= 500:  # not a refusal: the gateway (or its database) is in trouble
            print(f"gateway error ({error.code}): {message}", file=sys.stderr)
            return 2
        print(f"refused ({error.code}): {message}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as error:
        print(f"cannot reach the gateway at {gateway_url}: {error}", file=sys.stderr)
        return 2
    try:
        state = json.loads(body)
    except ValueError:  # something else answers at that URL
        print(f"not a SEQR gateway at {gateway_url}: its answer is not JSON: "
              f"{body[:200].decode('utf-8', 'replace')!r}", file=sys.stderr)
        return 2
    print(json.dumps(state, indent=2))
    return 0

"""The admin token (`SEQR_ADMIN_TOKEN`): who may use the simulator and the console.

Programs send it as `Authorization: Bearer <token>`; a person types it once into the
console's login form, which sets a cookie holding a digest of it (never the token itself),
HttpOnly and SameSite=Strict, so another site's page cannot make the browser use it.
"""

import hashlib
import hmac
from http.cookies import SimpleCookie
from typing import Any

COOKIE = "seqr_console"


def bearer_ok(environ: dict[str, Any], token: str) -> bool:
    scheme, _, given = environ.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
    if scheme.lower() != "bearer":  # the scheme is case-insensitive (RFC 9110 11.1)
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def token_ok(given: str, token: str) -> bool:
    return hmac.compare_digest(given.strip().encode(), token.encode())


def cookie_value(token: str) -> str:
    return hmac.new(token.encode(), b"seqr-console-session", hashlib.sha256).hexdigest()


def cookie_ok(environ: dict[str, Any], token: str) -> bool:
    cookies = SimpleCookie()
    try:
        cookies.load(environ.get("HTTP_COOKIE", ""))
    except Exception:  # noqa: BLE001 (a malformed Cookie header is no login)
        return False
    morsel = cookies.get(COOKIE)
    return morsel is not None and hmac.compare_digest(
        morsel.value.encode(), cookie_value(token).encode())


def allowed(environ: dict[str, Any], token: str | None) -> bool:
    """No token configured, or the request carries it (bearer header or login cookie)."""
    return not token or bearer_ok(environ, token) or cookie_ok(environ, token)


def login_cookie(token: str, secure: bool) -> str:
    flags = "; Secure" if secure else ""
    return f"{COOKIE}={cookie_value(token)}; Path=/; HttpOnly; SameSite=Strict{flags}"


def logout_cookie() -> str:
    return f"{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"

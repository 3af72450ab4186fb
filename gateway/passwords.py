"""Salted, slow password hashes (scrypt from the standard library), never stored in clear.

A register sends its password with every request and polls about once a second, so a
successful verification is remembered for a short while in process memory, keyed by an
HMAC under a per-process random key (never the password itself) and tied to the stored
hash, so a password change invalidates it at once.
"""

import base64
import hashlib
import hmac
import secrets
import threading
import time
from functools import cache

#: the shortest password SEQR accepts, for terminals and users alike, over SOAP or the CLI
MIN_PASSWORD_LENGTH = 4

_N, _R, _P = 2**14, 8, 1
_SCHEME = "scrypt"
_CACHE_SECONDS = 300.0
_CACHE_MAX = 10_000

_cache_key = secrets.token_bytes(32)
_cache: dict[bytes, float] = {}
_cache_lock = threading.Lock()


def password_rule_broken(password: str | None) -> str | None:
    """Why a new password is refused, or None when it is acceptable."""
    if password is None or len(password) < MIN_PASSWORD_LENGTH:
        return f"a password needs at least {MIN_PASSWORD_LENGTH} characters"
    return None


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.b64encode
    return f"{_SCHEME}${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def prepare() -> None:
    """Compute the dummy hash now, not in the first request about an unknown principal."""
    _dummy_hash()


@cache
def _dummy_hash() -> str:
    """A hash of a random password no one knows, with the current parameters."""
    return hash_password(secrets.token_urlsafe(16))


def _verify_slow(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != _SCHEME:
        return False
    expected = base64.b64decode(digest)
    actual = hashlib.scrypt(
        password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
        dklen=len(expected),
    )
    return hmac.compare_digest(actual, expected)


def _cache_entry(password: str, stored: str) -> bytes:
    return hmac.new(_cache_key, f"{stored}\0{password}".encode(), hashlib.sha256).digest()


def remembered(password: str | None, stored: str) -> bool:
    """Whether this process verified `password` against `stored` in the last few minutes:
    no scrypt work."""
    if password is None:
        return False
    now = time.monotonic()
    with _cache_lock:
        seen = _cache.get(_cache_entry(password, stored))
    return seen is not None and now - seen < _CACHE_SECONDS


def verify_password(password: str | None, stored: str | None) -> bool:
    """Whether `password` matches `stored`. With no stored hash (no such principal) the
    password is checked against a dummy hash all the same, so that the answer takes as
    long as for a principal that exists: timing does not tell which ones do."""
    if stored is None:
        _verify_slow(password or "", _dummy_hash())
        return False
    if password is None:
        _verify_slow("", stored)  # as long as a wrong password takes
        return False
    if remembered(password, stored):
        return True
    if not _verify_slow(password, stored):
        return False
    key = _cache_entry(password, stored)
    now = time.monotonic()
    with _cache_lock:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key] = now
    return True

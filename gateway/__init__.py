"""The SEQR merchant interface emulator: SOAP gateway, domain rules and report worker."""

# Before anything imports spyne: its bundled `six` needs a shim on Python 3.12+ (see compat).
from gateway import compat as _compat  # noqa: F401

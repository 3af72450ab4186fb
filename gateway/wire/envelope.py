"""The answers' bytes, in the shape the real service sent and legacy registers string-match.

The one module that knows the envelope's prefixes (manual chapter 5):

    <soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
    <ns2:sendInvoiceResponse xmlns:ns2="http://external.interfaces.ers.seamless.com/">
    <return><resultCode>0</resultCode>...</return></ns2:sendInvoiceResponse>
    </soap:Body></soap:Envelope>

Children are unqualified and in the WSDL's order (the Spyne models' field order, which
tests/test_contract_types.py holds to the official file); an absent value is left out,
never sent as xsi:nil; a required number is 0 unless set. A report's `contentString` is a
CDATA section holding the document as it is (manual chapter 8), so a register that
searches the answer for `<SalesTotal>` finds it. Faults use the same `soap:` envelope.

An answer is a list of byte chunks, so a large one can later be streamed piece by piece.
"""

import base64
import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any
from xml.sax.saxutils import escape

from spyne.model.binary import ByteArray
from spyne.model.complex import ComplexModelBase
from spyne.model.enum import EnumBase
from spyne.model.primitive import DateTime, Integer, Unicode
from spyne.model.primitive import Decimal as SpyneDecimal

from wsdl import TARGET_NAMESPACE

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
ENVELOPE_START = f'<soap:Envelope xmlns:soap="{SOAP11_ENV}"><soap:Body>'.encode()
ENVELOPE_END = b"</soap:Body></soap:Envelope>"
#: the operation wrapper's prefix, declared on the wrapper itself
WRAPPER_PREFIX = "ns2"
CONTENT_TYPE = "text/xml; charset=UTF-8"
#: fields written as a CDATA section: (type name, field name)
CDATA_FIELDS = frozenset({("report", "contentString")})

#: SOAP 1.1 fault codes
CLIENT = "Client"
SERVER = "Server"
VERSION_MISMATCH = "VersionMismatch"


def response(operation: str, kind: Any, value: Any) -> list[bytes]:
    """`<ns2:{operation}Response><return>` holding `value` (an instance of the Spyne type
    `kind`, or a dict of its fields), as byte chunks."""
    wrapper = f"{WRAPPER_PREFIX}:{operation}Response"
    parts = [f'<{wrapper} xmlns:{WRAPPER_PREFIX}="{TARGET_NAMESPACE}"><return>']
    _write_fields(parts, kind, value)
    parts.append(f"</return></{wrapper}>")
    return [ENVELOPE_START, "".join(parts).encode("utf-8"), ENVELOPE_END]


def fault(code: str, reason: str) -> bytes:
    """A SOAP 1.1 Fault (`soap:Client`, `soap:Server`, `soap:VersionMismatch`)."""
    return b"".join((
        ENVELOPE_START,
        f"<soap:Fault><faultcode>soap:{code}</faultcode><faultstring>{_text(reason)}"
        "</faultstring></soap:Fault>".encode(),
        ENVELOPE_END,
    ))


# --- values ----------------------------------------------------------------------------

Write = Callable[[list[str], str, Any, Any], None]


def _write_fields(parts: list[str], kind: Any, value: Any) -> None:
    get = value.get if isinstance(value, dict) else lambda name: getattr(value, name, None)
    for name, field_kind, write, repeated, required_number in _plan(kind):
        item = get(name)
        if item is None:
            if required_number:
                parts.append(f"<{name}>0</{name}>")
            continue
        if repeated:
            for one in item:
                if one is not None:
                    write(parts, name, field_kind, one)
        else:
            write(parts, name, field_kind, item)


def _element(parts: list[str], name: str, text: str) -> None:
    parts.append(f"<{name}>{text}</{name}>" if text else f"<{name}/>")


_ESCAPED = re.compile("[&<>\r]")


def _text(value: str) -> str:
    # most values (ids, codes, amounts) need nothing: one search instead of four replaces
    return escape(value, {"\r": "&#13;"}) if _ESCAPED.search(value) else value


def _complex(parts: list[str], name: str, kind: Any, value: Any) -> None:
    parts.append(f"<{name}>")
    _write_fields(parts, kind, value)
    parts.append(f"</{name}>")


def _string(parts: list[str], name: str, kind: Any, value: Any) -> None:
    _element(parts, name, _text(str(value)))


def _cdata(parts: list[str], name: str, kind: Any, value: Any) -> None:
    text = str(value)
    if not text:
        parts.append(f"<{name}/>")
        return
    # "]]>" cannot stand inside a CDATA section: end the section between "]]" and ">"
    parts.append(f"<{name}><![CDATA[{text.replace(']]>', ']]]]><![CDATA[>')}]]></{name}>")


def _integer(parts: list[str], name: str, kind: Any, value: Any) -> None:
    parts.append(f"<{name}>{int(value)}</{name}>")


def _decimal(parts: list[str], name: str, kind: Any, value: Any) -> None:
    # xs:decimal has no exponent: Decimal("1E-7") is written 0.0000001
    parts.append(f"<{name}>{format(Decimal(value), 'f')}</{name}>")


def _datetime(parts: list[str], name: str, kind: Any, value: datetime) -> None:
    parts.append(f"<{name}>{value.isoformat()}</{name}>")


def _bytes(parts: list[str], name: str, kind: Any, value: Any) -> None:
    data = value if isinstance(value, bytes | bytearray) else b"".join(value)
    _element(parts, name, base64.b64encode(data).decode("ascii"))


def _writer_of(owner: Any, name: str, kind: Any) -> Write:
    if issubclass(kind, ComplexModelBase):
        return _complex
    if (owner.get_type_name(), name) in CDATA_FIELDS:
        return _cdata
    if issubclass(kind, EnumBase):
        return _string
    if issubclass(kind, ByteArray):
        return _bytes
    if issubclass(kind, Integer):  # before Decimal: Spyne's Integer is a Decimal
        return _integer
    if issubclass(kind, SpyneDecimal):
        return _decimal
    if issubclass(kind, DateTime):
        return _datetime
    if issubclass(kind, Unicode):
        return _string
    raise TypeError(f"no writer for {kind}")


@cache
def _plan(kind: Any) -> tuple[tuple[str, Any, Write, bool, bool], ...]:
    """(name, type, writer, repeated, required number) per field, in the WSDL's order."""
    plan = []
    for name, field_kind in kind.get_flat_type_info(kind).items():
        attributes = field_kind.Attributes
        plan.append((name, field_kind, _writer_of(kind, name, field_kind),
                     attributes.max_occurs > 1,
                     attributes.min_occurs >= 1 and issubclass(field_kind, Integer)))
    return tuple(plan)

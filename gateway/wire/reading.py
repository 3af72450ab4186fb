"""Requests read as the real service read them (CXF/JAXB), into the contract's Spyne types.

JAXB matched a request's children by name and did not validate against the schema:
- elements in any order; an element missing gets its Java default (0 for a required
  `int`/`long`, null for anything else); an unknown element, a qualified child or an
  attribute is skipped; a non-repeatable element given twice keeps the last value;
- a value that cannot be read as its type (`abc` as an int, a malformed decimal or
  dateTime, an unknown enumeration value) is refused: `UnreadableValueError`, which the SOAP
  layer answers with a `Client` fault naming the element.
Every departure from the WSDL is noted as a `Deviation`. The plan of each type (its
fields, their order, how each is read) is computed once per type from the Spyne models of
`gateway.wire.contract`, which tests/test_contract_types.py holds to the official WSDL.
"""

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from functools import cache
from typing import Any

from spyne.model.binary import ByteArray
from spyne.model.complex import ComplexModelBase
from spyne.model.enum import EnumBase
from spyne.model.primitive import DateTime, Integer, Unicode
from spyne.model.primitive import Decimal as SpyneDecimal

from gateway.wire import deviations as dv
from gateway.wire.deviations import Deviation

XSI = "http://www.w3.org/2001/XMLSchema-instance"
_XSI_NIL = f"{{{XSI}}}nil"
_XSI_TYPE = f"{{{XSI}}}type"

_INTEGER = re.compile(r"[+-]?\d+")
# xs:decimal, and the exponent JAXB's BigDecimal also took
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,4})?")
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?")
_BOUNDS = {"int": 2 ** 31, "long": 2 ** 63}
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]")


class UnreadableValueError(Exception):
    """A value CXF/JAXB could not read as its type either: a Client fault."""


class Reader:
    """Reads one request; `notes` collects its deviations."""

    def __init__(self, notes: list[Deviation]) -> None:
        self.notes = notes

    def note(self, kind: str, detail: str) -> None:
        self.notes.append(Deviation(kind, detail))

    def arguments(self, element: Any, message: Any, path: str) -> list[Any]:
        """The operation element's children as the port method's arguments, in order."""
        values = self._fields(element, message, path)
        return [values.get(name) for name in _plan(message).names]

    # --- complex types -------------------------------------------------------------------

    def _fields(self, element: Any, kind: Any, path: str) -> dict[str, Any]:
        plan = _plan(kind)
        values: dict[str, Any] = {}
        furthest = -1
        for child in element:
            tag = child.tag
            if not isinstance(tag, str):  # a comment or PI the parser kept: not an element
                continue
            if tag[0] == "{":
                self.note(dv.UNKNOWN_ELEMENT, f"{path}/{_qualified(child)}: the contract's "
                          "child elements carry no namespace")
                continue
            field = plan.fields.get(tag)
            if field is None:
                self.note(dv.UNKNOWN_ELEMENT, f"{path}/{tag}")
                continue
            where = f"{path}/{tag}"
            if child.attrib:
                self._attributes(child, where)
            if field.index < furthest:
                self.note(dv.ELEMENT_OUT_OF_ORDER,
                          f"{where} after {path}/{plan.names[furthest]}")
            furthest = max(furthest, field.index)
            value = None if child.get(_XSI_NIL) in ("true", "1") else field.read(
                self, child, field.kind, where)
            if field.repeated:
                if value is not None:
                    values.setdefault(tag, []).append(value)
            else:
                if tag in values:
                    self.note(dv.REPEATED_ELEMENT, f"{where}: the last one counts")
                values[tag] = value
        for name in plan.required:
            if name not in values:
                self.note(dv.REQUIRED_ELEMENT_MISSING, f"{path}/{name}: read as 0")
                values[name] = 0
        return values

    def _complex(self, element: Any, kind: Any, path: str) -> Any:
        # a field's type is Spyne's customised copy of the model; instances are of the model
        return (getattr(kind, "__orig__", None) or kind)(**self._fields(element, kind, path))

    def _attributes(self, element: Any, path: str) -> None:
        for name in element.attrib:
            if name not in (_XSI_NIL, _XSI_TYPE):
                self.note(dv.UNKNOWN_ATTRIBUTE, f"{path}/@{name}")

    # --- simple types --------------------------------------------------------------------

    def _text(self, element: Any, path: str) -> str:
        """The element's own text; child elements (none in the contract) are skipped."""
        if not len(element):
            return element.text or ""
        parts = [element.text or ""]
        for child in element:
            if isinstance(child.tag, str):
                self.note(dv.UNKNOWN_ELEMENT, f"{path}/{_qualified(child)}")
            parts.append(child.tail or "")
        return "".join(parts)

    def _string(self, element: Any, kind: Any, path: str) -> str:
        return self._text(element, path)

    def _integer(self, element: Any, kind: Any, path: str) -> int:
        text = self._text(element, path).strip()
        type_name = kind.get_type_name()
        bound = _BOUNDS.get(type_name)
        if _INTEGER.fullmatch(text):
            number = int(text)
            if bound is None or -bound <= number < bound:
                return number
        raise UnreadableValueError(f"{path}: {text!r} is not a valid xs:{type_name}")

    def _decimal(self, element: Any, kind: Any, path: str) -> Decimal:
        text = self._text(element, path).strip()
        if _DECIMAL.fullmatch(text):
            return Decimal(text)
        raise UnreadableValueError(f"{path}: {text!r} is not a valid xs:decimal")

    def _datetime(self, element: Any, kind: Any, path: str) -> datetime:
        text = self._text(element, path).strip()
        try:
            return parse_datetime(text)
        except ValueError as error:
            raise UnreadableValueError(f"{path}: {text!r} is not a valid xs:dateTime ({error})"
                                  ) from None

    def _enum(self, element: Any, kind: Any, path: str) -> str:
        text = self._text(element, path).strip()
        if text in kind.__values__:
            return text
        raise UnreadableValueError(f"{path}: {text!r} is not one of {', '.join(kind.__values__)}")

    def _bytes(self, element: Any, kind: Any, path: str) -> bytes:
        """base64Binary as JAXB's decoder took it: characters outside the alphabet (and
        whitespace) skipped, an incomplete last group of four dropped; noted when that
        changes anything but whitespace."""
        raw = self._text(element, path).encode("ascii", "replace")
        symbols = _NOT_BASE64.sub(b"", raw)
        kept = len(symbols) - len(symbols) % 4
        if kept != len(symbols) or len(symbols) != len(raw.translate(None, b" \t\r\n")):
            self.note(dv.BASE64_REPAIRED,
                      f"{path}: read as {kept} base64 characters of {len(raw.strip())}")
        try:
            if b"=" not in symbols[:kept - 4]:  # padding only at the end: one call
                return base64.b64decode(symbols[:kept], validate=True)
            return b"".join(base64.b64decode(symbols[i:i + 4], validate=True)
                            for i in range(0, kept, 4))
        except binascii.Error as error:
            raise UnreadableValueError(f"{path}: not base64 ({error})") from None


def parse_datetime(text: str) -> datetime:
    """xs:dateTime: naive without a zone; `24:00:00` is the next day's midnight (XSD 1.0)."""
    match = _DATETIME.fullmatch(text)
    if match is None:
        raise ValueError("expected YYYY-MM-DDThh:mm:ss[.fff][Z|+hh:mm]")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zone = match.group(7), match.group(8)
    tz: timezone | None = None
    if zone == "Z":
        tz = UTC
    elif zone is not None:
        sign = -1 if zone[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    if hour == 24 and minute == 0 and second == 0 and micro == 0:
        return datetime(year, month, day, tzinfo=tz) + timedelta(days=1)
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)


def _qualified(element: Any) -> str:
    tag = element.tag
    if tag[0] != "{":
        return str(tag)
    uri, local = tag[1:].split("}", 1)
    prefix = next((p for p, u in element.nsmap.items() if u == uri and p), None)
    return f"{prefix}:{local}" if prefix else f"{{{uri}}}{local}"


# --- plans: how each type of the contract is read ----------------------------------------

Read = Callable[[Reader, Any, Any, str], Any]


@dataclass(frozen=True)
class _Field:
    index: int
    kind: Any
    repeated: bool
    read: Read


@dataclass(frozen=True)
class _Plan:
    names: tuple[str, ...]
    fields: dict[str, _Field]
    required: tuple[str, ...]  # required numbers: 0 when absent (null for anything else)


def _reader_of(kind: Any) -> Read:
    if issubclass(kind, ComplexModelBase):
        return Reader._complex
    if issubclass(kind, EnumBase):
        return Reader._enum
    if issubclass(kind, ByteArray):
        return Reader._bytes
    if issubclass(kind, Integer):  # before Decimal: Spyne's Integer is a Decimal
        return Reader._integer
    if issubclass(kind, SpyneDecimal):
        return Reader._decimal
    if issubclass(kind, DateTime):
        return Reader._datetime
    if issubclass(kind, Unicode):
        return Reader._string
    raise TypeError(f"no reader for {kind}")


@cache
def _plan(kind: Any) -> _Plan:
    info = kind.get_flat_type_info(kind)
    fields, required = {}, []
    for index, (name, field_kind) in enumerate(info.items()):
        attributes = field_kind.Attributes
        fields[name] = _Field(index, field_kind, attributes.max_occurs > 1,
                              _reader_of(field_kind))
        if attributes.min_occurs >= 1 and issubclass(field_kind, Integer):
            required.append(name)
    return _Plan(tuple(info), fields, tuple(required))

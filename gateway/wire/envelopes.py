"""SOAP envelopes as the console shows them: pretty-printed, passwords masked, and the lines
a contract deviation is about marked.

A deviation's detail starts with the path of the element it is about
(`sendInvoice/invoice/acknowledgmentMode: ...`, `.../@lang`); the lines holding that
element (by local name, whatever its prefix) are the ones marked.
"""

import re
from dataclasses import dataclass
from typing import Any

from lxml import etree

from gateway.control.journal import mask_passwords

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True,
                          huge_tree=False, load_dtd=False)
_PATH = re.compile(r"^\s*([A-Za-z_][\w.-]*(?::[\w.-]+)?(?:/@?[A-Za-z_{][\w.:{}-]*)+)")


@dataclass(frozen=True)
class Line:
    text: str
    #: the deviations (their kinds) this line's element is named by
    flags: tuple[str, ...] = ()


def targets(deviations: list[dict[str, Any]]) -> list[tuple[str, tuple[str, ...]]]:
    """For each deviation that names an element: its kind, and the local names of its path
    (`sendInvoice/invoice/colour` -> ("sendInvoice", "invoice", "colour"))."""
    found = []
    for deviation in deviations:
        match = _PATH.match(str(deviation.get("detail", "")))
        if not match:
            continue
        names = tuple(part.lstrip("@").split("}")[-1].split(":")[-1]
                      for part in match.group(1).rstrip(":").strip("/").split("/"))
        found.append((str(deviation.get("kind", "deviation")), tuple(n for n in names if n)))
    return found


def _opening(name: str) -> re.Pattern[str]:
    """A line opening the element `name` (any prefix), or holding an attribute `name`."""
    return re.compile(rf"<(?:[\w.-]+:)?{re.escape(name)}[\s/>]|\s{re.escape(name)}=")


def pretty(text: str, marks: list[tuple[str, tuple[str, ...]]] | None = None) -> list[Line]:
    """The envelope indented (as sent, when it is not XML), passwords masked, and for each
    deviation the lines of the element it names marked (of its nearest present parent, when
    the element itself is missing)."""
    try:
        root = etree.fromstring(text.encode("utf-8"), _PARSER)
        shown = etree.tostring(root, pretty_print=True, encoding="unicode")
    except (etree.XMLSyntaxError, ValueError):
        shown = text
    raw_lines = mask_passwords(shown.encode("utf-8")).rstrip("\n").split("\n")
    flags: list[list[str]] = [[] for _ in raw_lines]
    for kind, names in marks or []:
        for name in reversed(names):
            pattern = _opening(name)
            hits = [i for i, line in enumerate(raw_lines) if pattern.search(line)]
            if hits:
                for i in hits:
                    flags[i].append(kind)
                break
    return [Line(line, tuple(kinds)) for line, kinds in zip(raw_lines, flags, strict=True)]

"""Passwords out of logs: the contract's secret elements, masked in any text before it is logged.

The contract carries passwords in two elements, `password` (a clientContext's, and the new
terminal's in registerTerminal) and `newPassword` (changePrincipalPassword). A SOAP envelope
logged at DEBUG (zeep logs every one it sends and receives) would show them; so would a
database URL with its password. `redact` masks both; `RedactingFilter` applies it to every
record (message and traceback) of a logger or handler it is added to. The gateway and the
reference client both install it.
"""

import logging
import re

MASK = "***"

#: the elements of the official WSDL whose content is a password
SECRET_ELEMENTS = ("password", "newPassword")

_ELEMENT = re.compile(
    r"(?P<open><(?P<tag>(?:[\w.-]+:)?(?:" + "|".join(SECRET_ELEMENTS) + r"))(?:\s[^>]*)?>)"
    r"(?P<value>.*?)(?P<close></(?P=tag)\s*>)",
    re.DOTALL,
)
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+(?P<at>@)", re.I)


def redact(text: str) -> str:
    """`text` with the content of every password element, and URL passwords, masked."""
    if "assword" in text:
        text = _ELEMENT.sub(lambda m: m["open"] + MASK + m["close"], text)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK + m["at"], text)
    return text


class RedactingFilter(logging.Filter):
    """Masks passwords in a record's message and traceback; never drops a record."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self._formatter.formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install(*handlers: logging.Handler, loggers: tuple[str, ...] = ()) -> None:
    """Add one `RedactingFilter` to each handler and named logger (once each)."""
    targets: list[logging.Filterer] = [*handlers, *(logging.getLogger(n) for n in loggers)]
    for target in targets:
        if not any(isinstance(f, RedactingFilter) for f in target.filters):
            target.addFilter(RedactingFilter())

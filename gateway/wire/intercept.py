"""Where the control plane meets a SOAP call: who called which operation, what it answered,
and the fault rule applied to it.

`Intercept` runs an operation for `SoapEndpoint.handle` (its `around`): it notes the
operation and the caller's principal in the request's journal `Exchange`, and applies the
fault rule that hits the call, if any. Effects the SOAP answer cannot carry (an HTTP error,
a dropped connection) are left in the exchange for `wire/app.py` to carry out.
"""

import logging
import time
from collections.abc import Callable
from typing import Any

from gateway.control import faults
from gateway.control.journal import Exchange
from wsdl.resultcodes import ResultCode, code_name

log = logging.getLogger(__name__)

TERMINALID = "TERMINALID"


class Intercept:
    def __init__(self, rules: faults.Faults, exchange: Exchange) -> None:
        self.rules = rules
        self.exchange = exchange

    def __call__(self, operation: str, method: Any, arguments: list[Any],
                 invoke: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        exchange = self.exchange
        exchange.operation = operation
        _note_principal(method, arguments, exchange)
        hit = self._hit(exchange)
        if hit is None:
            return invoke()
        exchange.hit = hit
        exchange.injected = hit.label
        if hit.rule.delay_ms:
            time.sleep(hit.rule.delay_ms / 1000)
        if hit.effect == faults.RESULT_CODE:
            return _answer(int(hit.rule.result_code or 0))
        if hit.effect in (faults.HTTP_ERROR, faults.DROP):  # carried out by wire/app.py
            return _answer(int(ResultCode.SYSTEM_ERROR))
        answer = invoke()
        if hit.effect == faults.REPORT_NOT_READY and answer.get("resultCode") == 0:
            return _answer(int(ResultCode.REPORT_NOT_READY))
        return answer

    def _hit(self, exchange: Exchange) -> faults.Hit | None:
        try:
            return self.rules.hit_call(exchange.operation, exchange.principal_id,
                                       exchange.terminal_id)
        except Exception:  # the database away: the call itself will say so
            log.warning("fault rules could not be read", exc_info=True)
            return None


def _note_principal(method: Any, arguments: list[Any], exchange: Exchange) -> None:
    names = list(method.in_message._type_info)
    context = dict(zip(names, arguments, strict=False)).get("context")
    principal = getattr(context, "initiatorPrincipalId", None)
    if principal is None:
        return
    exchange.principal_type = principal.type
    exchange.principal_id = principal.id
    exchange.user_id = principal.userId
    if (principal.type or "").strip().upper() == TERMINALID:
        exchange.terminal_id = principal.id


def _answer(code: int) -> dict[str, Any]:
    """The operation's answer carrying only `code` (its other fields empty, numbers 0)."""
    return {"resultCode": code, "resultDescription": code_name(code)}

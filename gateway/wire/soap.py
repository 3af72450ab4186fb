"""SOAP 1.1 as the real service spoke it: a hardened parse, a lenient read, the answer.

A request is parsed without DTDs, entity expansion or network access (a message with a
Document Type Declaration is refused, as SOAP 1.1 requires); its Body must hold exactly
one operation of the port type, in the service's namespace, with any prefix. The
operation's children are then read as CXF/JAXB read them (`gateway.wire.reading`):
order, omissions and unknown elements are accepted and noted as deviations. What CXF
refused is refused here as a SOAP `Client` fault that says why: XML that does not parse,
a DTD, a body that is not one known operation, a value that cannot be read as its type.
A SOAP 1.2 envelope gets the `VersionMismatch` fault SOAP 1.1 defines. With `strict`, a
request with any deviation is refused too, naming them. The SOAPAction header and the
`?wsdl` query do not choose the operation: the body element does.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from gateway import limits
from gateway.service import Gateway
from gateway.wire import contract, envelope, metrics
from gateway.wire import deviations as dv
from gateway.wire.deviations import Deviation
from gateway.wire.reading import Reader, UnreadableValueError
from gateway.wire.streaming import StreamedReport

log = logging.getLogger(__name__)


_PARSER_OPTIONS = dict(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_blank_text=True,
    remove_comments=True,  # a comment or PI is not the operation element; drop them
    remove_pis=True,
)

SOAP11_ENV = envelope.SOAP11_ENV
_ENVELOPE = f"{{{SOAP11_ENV}}}Envelope"
_BODY = f"{{{SOAP11_ENV}}}Body"
_FAULT = f"{{{SOAP11_ENV}}}Fault"
PORT_TYPE = "ERSWSExternalClientService"

#: what may run an operation instead of `contract.invoke`: given the operation's name, its
#: Spyne method, its arguments and the call itself, it returns the answer's fields
Around = Callable[[str, Any, list[Any], Callable[[], dict[str, Any]]], dict[str, Any]]

OK = "200 OK"
FAULT_STATUS = "500 Internal Server Error"  # SOAP 1.1 over HTTP: a fault is a 500


class SoapFaultError(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def client_fault(reason: str) -> SoapFaultError:
    return SoapFaultError(envelope.CLIENT, reason)


_per_thread = threading.local()


def _parser() -> Any:
    """This thread's hardened parser: made once (making one cost as much as parsing a poll),
    and never shared, since an lxml parser serves one thread at a time."""
    parser = getattr(_per_thread, "parser", None)
    if parser is None:
        parser = _per_thread.parser = etree.XMLParser(**_PARSER_OPTIONS)
    return parser


def parse_envelope(body: bytes) -> Any:
    """The envelope's root element, or a Client fault."""
    if not body.strip():
        raise client_fault("empty request body: expected a SOAP envelope")
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as error:
        raise client_fault(f"malformed XML: {error}") from None
    if root.getroottree().docinfo.doctype:
        raise client_fault("a SOAP message must not contain a Document Type Declaration")
    return root


def operation_element(root: Any) -> Any:
    """A request envelope is `Envelope/[Header]/Body` holding exactly one element."""
    if root.tag != _ENVELOPE:
        if etree.QName(root).localname == "Envelope":
            raise SoapFaultError(envelope.VERSION_MISMATCH,
                            f"the Envelope is in {etree.QName(root).namespace or 'no namespace'}"
                            f": this service speaks SOAP 1.1 ({SOAP11_ENV})")
        raise client_fault(f"the root element is {root.tag}, not a SOAP 1.1 Envelope "
                           f"({SOAP11_ENV})")
    bodies = root.findall(_BODY)
    if len(bodies) != 1:
        raise client_fault(f"a SOAP Envelope needs exactly one Body, this one has {len(bodies)}")
    body = bodies[0]
    if (body.text or "").strip() or any((child.tail or "").strip() for child in body):
        raise client_fault("the SOAP Body holds text outside the operation element")
    if len(body) != 1:
        raise client_fault(
            f"the SOAP Body must hold exactly one operation element, found {len(body)}")
    if body[0].tag == _FAULT:
        raise client_fault("a request must be an operation, not a SOAP Fault")
    return body[0]


def trim_collections(operation: Any) -> None:
    """Drop the invoice rows past one more than the domain accepts, before they are read:
    the domain still refuses the invoice (49), but 80,000 empty rows no longer cost seconds
    of a worker to turn into objects first."""
    for rows in operation.iter("invoiceRows"):
        del rows[limits.INVOICE_ROWS + 1:]


@dataclass
class Exchange:
    """One SOAP request and its answer, as the WSGI layer hands it on."""


    status: str
    chunks: list[bytes]
    operation: str | None = None
    result_code: int | None = None
    fault_code: str | None = None
    deviations: list[Deviation] = field(default_factory=list)
    #: a ready report to stream into `chunks` in place of its placeholders (`streaming`)
    streamed: StreamedReport | None = None


class SoapEndpoint:
    def __init__(self, gateway: Gateway, strict: bool = False,
                 stream_reports: bool = True) -> None:
        self.gateway = gateway
        self.strict = strict
        self.stream_reports = stream_reports
        self.methods = contract.methods()

    def handle(self, body: bytes, soap_action: str | None = None,
               query: str = "", around: "Around | None" = None) -> Exchange:
        """The answer to one request. `around`, when given, runs the operation (the control
        plane's fault rules and journal: `gateway.wire.intercept`)."""
        started = time.perf_counter()
        notes: list[Deviation] = []
        if query.lower() in ("wsdl", "wsdl="):
            notes.append(Deviation(dv.POST_TO_WSDL_URL,
                                   "posted to the ?wsdl URL; the endpoint is the URL without it"))
        if soap_action is not None and soap_action.strip().strip('"').strip():
            notes.append(Deviation(dv.SOAP_ACTION, f"SOAPAction {soap_action!r} ignored: the "
                                   "binding's is empty, the body names the operation"))
        name = None
        try:
            element = operation_element(parse_envelope(body))
            name, method = self._method(element)
            trim_collections(element)
            arguments = Reader(notes).arguments(element, method.in_message, name)
            call = contract.Call(self.gateway, name, notes, strict=self.strict,
                                 stream_reports=self.stream_reports)
            if around is None:
                answer = contract.invoke(call, method, arguments)
            else:
                answer = around(name, method, arguments,
                                lambda: contract.invoke(call, method, arguments))
            if self.strict and notes:  # an operation that calls no gateway method
                raise contract.StrictRefusalError(name)
        except UnreadableValueError as error:
            return self._fault(client_fault(f"a value cannot be read: {error}"), name, notes)
        except contract.StrictRefusalError:
            return self._fault(self._refusal(notes), name, notes)
        except SoapFaultError as fault:
            return self._fault(fault, name, notes)
        code = answer["resultCode"]
        metrics.observe(name, code, time.perf_counter() - started, notes)
        if notes:
            log.info("%s answered %s with %d deviation(s) from the WSDL: %s", name, code,
                     len(notes), dv.describe(notes))
        chunks = envelope.response(name, contract.return_type(method), answer)
        streamed = call.streamed if code == 0 else None
        return Exchange(OK, chunks, name, code, None, notes, streamed)

    def _method(self, element: Any) -> tuple[str, Any]:
        qname = etree.QName(element)
        method = self.methods.get(qname.localname)
        if method is None or qname.namespace != contract.NS:
            where = f"in {qname.namespace}" if qname.namespace else "without a namespace"
            raise client_fault(
                f"the SOAP Body holds {qname.localname} ({where}), which is not an operation "
                f"of {PORT_TYPE} ({contract.NS})")
        return qname.localname, method

    @staticmethod
    def _refusal(notes: list[Deviation]) -> SoapFaultError:
        return client_fault(
            f"strict mode: the request departs from the WSDL in {len(notes)} way(s): "
            + dv.describe(notes))

    @staticmethod
    def _fault(fault: SoapFaultError, operation: str | None, notes: list[Deviation]) -> Exchange:
        metrics.count_fault(fault.code, notes)
        log.info("%s refused with a %s fault: %s", operation or "request", fault.code,
                 fault.reason)
        return Exchange(FAULT_STATUS, [envelope.fault(fault.code, fault.reason)], operation,
                        None, fault.code, notes)

"""Contract deviations: each way a request departs from the WSDL that the real service took.

SEQR ran on Apache CXF with JAXB, which did not validate requests against the schema:
registers and plugins sent elements out of order, left required ones out, added unknown
ones, and the service answered them all. The gateway takes them too, and notes every
departure as a `Deviation` (a kind and a human detail). The list of one request is in the
WSGI environ as `environ["seqr.deviations"]`, in that request's log line, and counted by
kind in Prometheus (`seqr_soap_deviations_total`); `serve --strict` refuses any request
that has one, naming them, so a register's developer can make it clean before certifying.
"""

from dataclasses import dataclass

ENVIRON_KEY = "seqr.deviations"

#: an element of the contract after one the WSDL's sequence puts after it
ELEMENT_OUT_OF_ORDER = "element-out-of-order"
#: an element the WSDL requires (minOccurs 1) is absent: read as its Java default
REQUIRED_ELEMENT_MISSING = "required-element-missing"
#: an element the WSDL does not have there (or a qualified child, which it never has)
UNKNOWN_ELEMENT = "unknown-element"
#: an element that may occur once, given again: the last one counts, as in JAXB
REPEATED_ELEMENT = "repeated-element"
#: an attribute on a child element (the contract has none): ignored
UNKNOWN_ATTRIBUTE = "unknown-attribute"
#: base64 with characters outside its alphabet or a cut-off last group: those are dropped
BASE64_REPAIRED = "base64-repaired"
#: a RESELLERUSER principal spelled `<id>shop/user</id>` with no `userId` (the Java sample)
PRINCIPAL_SHOP_SLASH_USER = "principal-shop-slash-user"
#: sendInvoice/updateInvoice without `acknowledgmentMode` on a v2 endpoint (see invoices.py)
ACKNOWLEDGMENT_MODE_OMITTED = "acknowledgment-mode-omitted-on-v2"
#: a SOAPAction header other than the binding's empty one: ignored, the body names the call
SOAP_ACTION = "soap-action"
#: the request was posted to the `?wsdl` URL rather than the endpoint
POST_TO_WSDL_URL = "post-to-wsdl-url"

KINDS = (
    ELEMENT_OUT_OF_ORDER, REQUIRED_ELEMENT_MISSING, UNKNOWN_ELEMENT, REPEATED_ELEMENT,
    UNKNOWN_ATTRIBUTE, BASE64_REPAIRED, PRINCIPAL_SHOP_SLASH_USER, ACKNOWLEDGMENT_MODE_OMITTED,
    SOAP_ACTION, POST_TO_WSDL_URL,
)


@dataclass(frozen=True, slots=True)
class Deviation:
    kind: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "detail": self.detail}

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


def describe(deviations: list[Deviation]) -> str:
    """One line naming every deviation, for a log line or a fault."""
    return "; ".join(str(d) for d in deviations)

"""SOAP 1.1 as the contract has it: hardened parsing and strict validation of requests.

Requests are parsed without DTDs, entity expansion or network access (a message with a
Document Type Declaration is refused, as SOAP 1.1 requires), then the operation element is
validated against the schema of the official WSDL. Anything that fails becomes a SOAP
`Client` fault that says why; nothing reaches the service code.
"""

from typing import Any

from lxml import etree
from spyne import Fault
from spyne.protocol.soap import Soap11
from spyne.protocol.xml import XmlDocument

from gateway import limits
from wsdl import request_schema

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

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"


def parse_envelope(body: bytes) -> Any:
    """The envelope's root element, or a Client fault."""
    if not body.strip():
        raise Fault("Client.XMLSyntaxError", "empty request body: expected a SOAP envelope")
    try:
        root = etree.fromstring(body, etree.XMLParser(**_PARSER_OPTIONS))
    except etree.XMLSyntaxError as error:
        raise Fault("Client.XMLSyntaxError", f"malformed XML: {error}") from None
    if root.getroottree().docinfo.doctype:
        raise Fault(
            "Client.DTDNotAllowed", "a SOAP message must not contain a Document Type Declaration"
        )
    return root


def check_envelope(envelope: Any) -> None:
    """A request envelope is `Envelope/[Header]/Body` holding exactly one operation element."""
    if envelope.tag != f"{{{SOAP11_ENV}}}Envelope":
        raise Fault(
            "Client.SoapError",
            f"the root element is {envelope.tag}, not a SOAP 1.1 Envelope ({SOAP11_ENV})",
        )
    bodies = envelope.findall(f"{{{SOAP11_ENV}}}Body")
    if len(bodies) != 1:
        raise Fault("Client.SoapError",
                    f"a SOAP Envelope needs exactly one Body, this one has {len(bodies)}")
    body = bodies[0]
    if (body.text or "").strip() or any((child.tail or "").strip() for child in body):
        raise Fault("Client.SoapError", "the SOAP Body holds text outside the operation element")
    if len(body) != 1:
        raise Fault("Client.SoapError",
                    f"the SOAP Body must hold exactly one operation element, found {len(body)}")
    if body[0].tag == f"{{{SOAP11_ENV}}}Fault":
        raise Fault("Client.SoapError", "a request must be an operation, not a SOAP Fault")


def trim_collections(envelope: Any) -> None:
    """Drop the invoice rows past one more than the domain accepts, before the schema check
    and Spyne's deserialisation: the domain still refuses the invoice (49), but 80,000 empty
    rows no longer cost seconds of a worker to turn into objects first."""
    for rows in envelope.iter("invoiceRows"):
        del rows[limits.INVOICE_ROWS + 1:]


class ContractSoap11(Soap11):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, validator=None, **kwargs)

    def create_in_document(self, ctx: Any, charset: str | None = None) -> None:
        if ctx.transport.get_request_method() != "POST":
            raise Fault("Client.RequestNotAllowed", "send SOAP requests with POST")
        body = b"".join(
            chunk if isinstance(chunk, bytes) else chunk.encode() for chunk in ctx.in_string
        )
        ctx.in_document = (parse_envelope(body), {})

    def decompose_incoming_envelope(self, ctx: Any, message: Any = XmlDocument.REQUEST) -> None:
        if message is XmlDocument.REQUEST:
            check_envelope(ctx.in_document[0])
            trim_collections(ctx.in_document[0])
        super().decompose_incoming_envelope(ctx, message)

    def deserialize(self, ctx: Any, message: Any) -> None:
        """Schema-valid values Python cannot hold (e.g. a dateTime at 24:00:00) are the
        client's problem too: a Client fault, not an unhandled error."""
        try:
            super().deserialize(ctx, message)
        except (ValueError, ArithmeticError) as error:
            raise Fault("Client.ValidationError", f"a value cannot be read: {error}") from None

    def validate_body(self, ctx: Any, message: Any) -> None:
        if message is not XmlDocument.REQUEST:
            return
        operation = ctx.in_body_doc
        if operation is None:
            raise Fault("Client.SoapError", "the SOAP Body holds no operation element")
        schema = request_schema()
        if not schema.validate(operation):
            errors = "; ".join(
                f"line {e.line}: {e.message}" for e in list(schema.error_log)[:5]
            )
            raise Fault(
                "Client.SchemaValidationError", f"request does not match the WSDL: {errors}"
            )

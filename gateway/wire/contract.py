"""The official port type `ERSWSExternalClientService`, declared with Spyne models.

Every type mirrors `wsdl/ERSWSExternalClientService.wsdl` field by field and in order
(tests/test_contract_types.py holds them to it); every field is customised with
`sub_ns=""`, as `elementFormDefault="unqualified"` says. Spyne is the declaration only:
`reading.py` reads requests into these models, `envelope.py` writes the answers from them.
Each port method maps its wire arguments to one `Gateway` call and the result to the
answer's fields; `invoke` is the one wrapper that runs them and turns failures into result
codes. Business outcomes are answers with a resultCode, never faults.
"""

import logging
from functools import cache
from typing import Any

from spyne import (
    Application,
    ByteArray,
    ComplexModel,
    DateTime,
    Decimal,
    Enum,
    Integer,
    Integer32,
    Long,
    ServiceBase,
    Unicode,
    rpc,
)
from spyne.protocol.soap import Soap11
from sqlalchemy.exc import DBAPIError

from gateway import invoices, payments
from gateway.auth import Credentials
from gateway.errors import SeqrError, database_error_code
from gateway.parameters import Parameters
from gateway.principals import PrincipalInfo
from gateway.reports.requests import ReportDocumentOut
from gateway.service import Gateway
from gateway.wire import deviations, metrics, streaming
from gateway.wire.deviations import Deviation
from storage import jobs
from storage.models import Invoice as StoredInvoice
from wsdl import TARGET_NAMESPACE
from wsdl.resultcodes import ResultCode

log = logging.getLogger(__name__)

NS = TARGET_NAMESPACE


def field(kind: Any, min_occurs: int = 0, max_occurs: Any = 1) -> Any:
    """An unqualified element of the contract (no xsi:nil: absent means not given).

    A required number (`resultCode`, `version`, ...: minOccurs 1, not nillable) is a Java
    primitive in the official service, always sent and 0 unless set. It defaults to 0 here
    too: left None, Spyne would send `<version xsi:nil="true"/>`, which the schema forbids.
    (`default_factory`, not `default`: it fills instances without touching Spyne's schema.)
    """
    extra = {"default_factory": int} if min_occurs >= 1 and issubclass(kind, Integer) else {}
    return kind.customize(sub_ns="", min_occurs=min_occurs, max_occurs=max_occurs,
                          nillable=False, **extra)


def many(kind: Any) -> Any:
    return field(kind, 0, "unbounded")


class Model(ComplexModel):
    __namespace__ = NS

    def __init__(self, **values: Any) -> None:
        """What Spyne's own __init__ makes (every field set: the value given, else its
        default or default_factory, else None; anything else ignored) in a tenth of the
        time. Every request's reading and every answer build a few of these (a PAID poll's
        answer eight), and Spyne's per-field machinery was a third of that poll's time. The
        contract's models use nothing else of it (positional XmlData, read-only properties,
        SQLAlchemy mapping). tests/test_contract_types.py holds the two to the same result."""
        members = self.__dict__
        for name, default, factory in _members(type(self)):
            if name in values:
                members[name] = values[name]
            else:
                members[name] = factory() if factory is not None else default


@cache
def _members(model: type) -> tuple[tuple[str, Any, Any], ...]:
    """(name, default, default_factory) of each field of a model, in order."""
    return tuple((name, kind.Attributes.default, kind.Attributes.default_factory)
                 for name, kind in model.get_flat_type_info(model).items())


# --- simple types --------------------------------------------------------------------------

PaymentMode = Enum(*invoices.PAYMENT_MODES, type_name="paymentMode")
AcknowledgmentMode = Enum(*invoices.ACKNOWLEDGMENT_MODES, type_name="acknowledgmentMode")
InvoiceStatus = Enum(*StoredInvoice.STATUSES, type_name="invoiceStatus")


# --- request types ---------------------------------------------------------------------------


class PrincipalId(Model):
    __type_name__ = "principalId"
    _type_info = [
        ("id", field(Unicode)),
        ("type", field(Unicode)),
        ("userId", field(Unicode)),
    ]


class ClientContext(Model):
    __type_name__ = "clientContext"
    _type_info = [
        ("channel", field(Unicode)),
        ("clientComment", field(Unicode)),
        ("clientId", field(Unicode)),
        ("clientReference", field(Unicode)),
        ("clientRequestTimeout", field(Long, 1)),
        ("initiatorPrincipalId", field(PrincipalId)),
        ("password", field(Unicode)),
    ]


class Amount(Model):
    __type_name__ = "amount"
    _type_info = [
        ("currency", field(Unicode)),
        ("value", field(Decimal)),
    ]


class PaymentInvoiceRow(Model):
    __type_name__ = "paymentInvoiceRow"
    _type_info = [
        ("itemDescription", field(Unicode)),
        ("itemDiscount", field(Amount)),
        ("itemEAN", field(Unicode)),
        ("itemQuantity", field(Decimal)),
        ("itemSKU", field(Unicode)),
        ("itemTaxRate", field(Decimal)),
        ("itemTotalAmount", field(Amount)),
        ("itemUnit", field(Unicode)),
        ("itemUnitPrice", field(Amount)),
    ]


class InvoiceRows(Model):
    """The anonymous `invoiceRows` wrapper of `invoice`."""

    __type_name__ = "invoiceRows"
    _type_info = [("invoiceRow", many(PaymentInvoiceRow))]


class Invoice(Model):
    __type_name__ = "invoice"
    _type_info = [
        ("paymentMode", field(PaymentMode)),
        ("acknowledgmentMode", field(AcknowledgmentMode)),
        ("issueDate", field(DateTime)),
        ("title", field(Unicode)),
        ("clientInvoiceId", field(Unicode)),
        ("invoiceRows", field(InvoiceRows)),
        ("totalAmount", field(Amount)),
        ("cashierId", field(Unicode)),
        ("footer", field(Unicode)),
        ("backURL", field(Unicode)),
        ("notificationUrl", field(Unicode)),
    ]


class Parameter(Model):
    __type_name__ = "parameter"
    _type_info = [("key", field(Unicode)), ("value", field(Unicode))]


class MapArray(Model):
    __type_name__ = "mapArray"
    _type_info = [("entry", many(Parameter))]


class ParameterMap(Model):
    __type_name__ = "parameterMap"
    _type_info = [("parameter", field(MapArray))]


class CustomerToken(Model):
    __type_name__ = "customerToken"
    _type_info = [
        ("description", field(Unicode)),
        ("id", field(Unicode)),
        ("status", field(Integer32, 1)),
        ("value", field(Unicode)),
    ]


class ReceiptDocument(Model):
    __type_name__ = "receiptDocument"
    _type_info = [
        ("mimeType", field(Unicode)),
        ("receiptData", field(ByteArray)),
        ("receiptType", field(Unicode)),
    ]


class PrincipalAccountSpecifier(Model):
    __type_name__ = "principalAccountSpecifier"
    _type_info = [("accountId", field(Unicode)), ("accountTypeId", field(Unicode))]


class PrincipalPurchaseProductSpecifier(Model):
    __type_name__ = "principalPurchaseProductSpecifier"
    _type_info = [("productId", field(Unicode)), ("productIdType", field(Unicode))]


class PurchaseOrderRow(Model):
    __type_name__ = "purchaseOrderRow"
    _type_info = [
        ("productSpecifier", field(PrincipalPurchaseProductSpecifier)),
        ("purchaseCount", field(Integer32, 1)),
    ]


# --- response types ----------------------------------------------------------------------


class PrincipalAccount(Model):
    __type_name__ = "principalAccount"
    _type_info = [
        ("accountDescription", field(Unicode)),
        ("accountSpecifier", field(PrincipalAccountSpecifier)),
        ("balance", field(Amount)),
        ("creditLimit", field(Amount)),
    ]


class Accounts(Model):
    """The anonymous `accounts` wrapper of `principal`."""

    __type_name__ = "accounts"
    _type_info = [("account", many(PrincipalAccount))]


class Principal(Model):
    __type_name__ = "principal"
    _type_info = [
        ("principalId", field(PrincipalId)),
        ("principalName", field(Unicode)),
        ("accounts", field(Accounts)),
        ("status", field(Unicode)),
        ("msisdn", field(Unicode)),
    ]


class Receipt(Model):
    __type_name__ = "receipt"
    _type_info = [
        ("terminalId", field(Unicode)),
        ("paymentDate", field(DateTime)),
        ("clientInvoiceId", field(Unicode)),
        ("invoiceReference", field(Unicode)),
        ("paymentReference", field(Unicode)),
        ("payerTerminalId", field(Unicode)),
        ("receiverName", field(Unicode)),
        ("invoice", field(Invoice)),
    ]


class CustomerTokens(Model):
    """The anonymous `customerTokens` wrapper of `erswsPaymentStatusResponse`."""

    __type_name__ = "customerTokens"
    _type_info = [("token", many(CustomerToken))]


class Report(Model):
    __type_name__ = "report"
    _type_info = [
        ("title", field(Unicode)),
        ("mimeType", field(Unicode)),
        ("content", field(ByteArray)),
        ("contentString", field(Unicode)),
    ]


class ErswsResponse(Model):
    __type_name__ = "erswsResponse"
    _type_info = [
        ("ersReference", field(Unicode)),
        ("resultCode", field(Integer32, 1)),
        ("resultDescription", field(Unicode)),
    ]


class ErswsMarkTransactionPeriodResponse(ErswsResponse):
    __type_name__ = "erswsMarkTransactionPeriodResponse"
    _type_info = [("transactionPeriodId", field(Unicode))]


class ErswsRegisterTerminalResponse(ErswsResponse):
    __type_name__ = "erswsRegisterTerminalResponse"
    _type_info = [("terminalId", field(Unicode))]


class ErswsExecuteReportResponse(ErswsResponse):
    __type_name__ = "erswsExecuteReportResponse"
    _type_info = [("report", field(Report))]


class ErswsPrincipalInformationResponse(ErswsResponse):
    __type_name__ = "erswsPrincipalInformationResponse"
    _type_info = [("requestedPrincipal", field(Principal))]


class ErswsPaymentStatusResponse(ErswsResponse):
    __type_name__ = "erswsPaymentStatusResponse"
    _type_info = [
        ("status", field(InvoiceStatus)),
        ("receipt", field(Receipt)),
        ("customerTokens", field(CustomerTokens)),
        ("version", field(Integer32, 1)),
    ]


class ErswsSendInvoiceResponse(ErswsResponse):
    __type_name__ = "erswsSendInvoiceResponse"
    _type_info = [("invoiceQRCode", field(Unicode)), ("invoiceReference", field(Unicode))]


class ErswsPurchaseResponse(ErswsResponse):
    __type_name__ = "erswsPurchaseResponse"
    _type_info = [
        ("paymentPrincipal", field(Principal)),
        ("purchaseReference", field(Unicode)),
        ("purchasedProducts", many(PrincipalPurchaseProductSpecifier)),
        ("receiverPrincipal", field(Principal)),
    ]


class ErswsTopupResponse(ErswsResponse):
    __type_name__ = "erswsTopupResponse"
    _type_info = [
        ("requestedTopupAmount", field(Amount)),
        ("senderPrincipal", field(Principal)),
        ("topupAccountSpecifier", field(PrincipalAccountSpecifier)),
        ("topupAmount", field(Amount)),
        ("topupPrincipal", field(Principal)),
    ]


class ErswsTransferResponse(ErswsResponse):
    __type_name__ = "erswsTransferResponse"
    _type_info = [
        ("receivedAmount", field(Amount)),
        ("receiverPrincipal", field(Principal)),
        ("requestedTransferAmount", field(Amount)),
        ("senderPrincipal", field(Principal)),
    ]


# --- translation helpers -----------------------------------------------------------------


class StrictRefusalError(Exception):
    """Under `--strict`, a request with deviations reached a Gateway call: refused instead."""


class StrictGateway:
    """The gateway as a port method sees it under `--strict`: a call is refused, before it
    runs, when the request has any deviation (the reader's, and those the method's own
    argument mapping noted on the way: Python evaluates the arguments first)."""

    def __init__(self, gateway: Gateway, deviations: list[Deviation]) -> None:
        self._gateway = gateway
        self._deviations = deviations

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._gateway, name)

        def guarded(*args: Any, **kwargs: Any) -> Any:
            if self._deviations:
                raise StrictRefusalError(name)
            return method(*args, **kwargs)

        return guarded


class Call:
    """One request on its way through a port method: the gateway, and the request's
    deviations (the reader's, and any a translation helper notes while it maps the
    arguments)."""

    __slots__ = ("deviations", "gateway", "operation", "stream_reports", "streamed")

    def __init__(self, gateway: Gateway, operation: str, deviations: list[Deviation],
                 strict: bool = False, stream_reports: bool = False) -> None:
        self.gateway: Any = StrictGateway(gateway, deviations) if strict else gateway
        self.operation = operation
        self.deviations = deviations
        #: a ready report's document goes out streamed (`from_report`, `wire/streaming.py`)
        self.stream_reports = stream_reports
        self.streamed: streaming.StreamedReport | None = None

    def note(self, kind: str, detail: str) -> None:
        self.deviations.append(Deviation(kind, detail))


def credentials(call: Call, context: ClientContext | None) -> Credentials | None:
    if context is None:
        return None
    principal = context.initiatorPrincipalId
    if principal is None:
        return Credentials(password=context.password)
    creds = Credentials(principal.type, principal.id, principal.userId, context.password)
    split = creds.with_user_in_id()
    if split is not None:
        call.note(deviations.PRINCIPAL_SHOP_SLASH_USER,
                  f"{call.operation}/context/initiatorPrincipalId/id {principal.id!r}: "
                  f"read as reseller {split.principal_id!r}, user {split.user_id!r}")
        return split
    return creds


def to_parameters(value: ParameterMap | None) -> Parameters:
    entries = value.parameter.entry if value is not None and value.parameter is not None else None
    return Parameters((e.key, e.value) for e in entries or ())


def principal_credentials(value: PrincipalId | None) -> Credentials | None:
    if value is None:
        return None
    return Credentials(value.type, value.id, value.userId)


def _to_amount(value: Amount | None) -> invoices.Amount | None:
    return invoices.Amount(value.currency, value.value) if value is not None else None


def _from_amount(value: invoices.Amount | None) -> Amount | None:
    return Amount(currency=value.currency, value=value.value) if value is not None else None


def _enum_text(value: Any) -> str | None:
    """Spyne hands enumerations over as its own EnumValue objects."""
    return None if value is None else str(value)


def to_invoice_data(value: Invoice | None) -> invoices.InvoiceData | None:
    if value is None:
        return None
    rows = value.invoiceRows.invoiceRow if value.invoiceRows is not None else None
    return invoices.InvoiceData(
        payment_mode=_enum_text(value.paymentMode),
        acknowledgment_mode=_enum_text(value.acknowledgmentMode),
        issue_date=value.issueDate,
        title=value.title,
        client_invoice_id=value.clientInvoiceId,
        rows=tuple(
            invoices.InvoiceRow(
                description=row.itemDescription, discount=_to_amount(row.itemDiscount),
                ean=row.itemEAN, quantity=row.itemQuantity, sku=row.itemSKU,
                tax_rate=row.itemTaxRate, total=_to_amount(row.itemTotalAmount),
                unit=row.itemUnit, unit_price=_to_amount(row.itemUnitPrice),
            )
            for row in rows or ()
        ),
        total=_to_amount(value.totalAmount),
        cashier_id=value.cashierId,
        footer=value.footer,
        back_url=value.backURL,
        notification_url=value.notificationUrl,
    )


def register_invoice(call: Call, value: Invoice | None) -> invoices.InvoiceData | None:
    """The invoice of sendInvoice or updateInvoice; an omitted acknowledgmentMode is noted,
    with the reason it matters (`invoices.OMITTED_ACKNOWLEDGMENT_MODE`)."""
    data = to_invoice_data(value)
    if data is not None and data.acknowledgment_mode is None:
        call.note(deviations.ACKNOWLEDGMENT_MODE_OMITTED,
                  f"{call.operation}/invoice/acknowledgmentMode: "
                  + invoices.OMITTED_ACKNOWLEDGMENT_MODE_NOTE)
    return data


def from_invoice_data(data: invoices.InvoiceData) -> Invoice:
    rows = [
        PaymentInvoiceRow(
            itemDescription=row.description, itemDiscount=_from_amount(row.discount),
            itemEAN=row.ean, itemQuantity=row.quantity, itemSKU=row.sku,
            itemTaxRate=row.tax_rate, itemTotalAmount=_from_amount(row.total),
            itemUnit=row.unit, itemUnitPrice=_from_amount(row.unit_price),
        )
        for row in data.rows
    ]
    return Invoice(
        paymentMode=data.payment_mode, acknowledgmentMode=data.acknowledgment_mode,
        issueDate=data.issue_date, title=data.title, clientInvoiceId=data.client_invoice_id,
        invoiceRows=InvoiceRows(invoiceRow=rows) if rows else None,
        totalAmount=_from_amount(data.total), cashierId=data.cashier_id, footer=data.footer,
        backURL=data.back_url, notificationUrl=data.notification_url,
    )


def from_payment_status(status: payments.PaymentStatus) -> dict[str, Any]:
    fields: dict[str, Any] = {"status": status.status, "version": status.version}
    if status.receipt is not None:
        receipt = status.receipt
        fields["ersReference"] = status.payment_reference
        fields["receipt"] = Receipt(
            terminalId=receipt.terminal_id, paymentDate=receipt.payment_date,
            clientInvoiceId=receipt.client_invoice_id,
            invoiceReference=receipt.invoice_reference,
            paymentReference=receipt.payment_reference,
            payerTerminalId=receipt.payer_terminal_id, receiverName=receipt.receiver_name,
            invoice=from_invoice_data(receipt.invoice),
        )
    return fields


def from_report(call: Call, document: ReportDocumentOut) -> dict[str, Any]:
    """The ready report: its document in place, or, when answers are streamed, placeholders
    that the WSGI app replaces with the stored chunks as it sends the answer.

    A document of one stored chunk or less is read here, inside the call: a database that
    fails then still gets the register a whole answer (94), where a stream cut short could
    only break the connection. Larger ones are streamed, so none is held whole."""
    gateway = call.gateway
    if call.stream_reports and document.size > jobs.CHUNK_BYTES:
        call.streamed = streaming.StreamedReport(lambda: gateway.report_chunks(document),
                                                 document.size)
        marks = streaming.PLACEHOLDERS
        return {"report": Report(title=document.title, mimeType=document.mime_type,
                                 content=marks.content, contentString=marks.text)}
    content = gateway.report_content(document)
    return {"report": Report(title=document.title, mimeType=document.mime_type,
                             content=content, contentString=content.decode("utf-8"))}


def from_principal(info: PrincipalInfo) -> dict[str, Any]:
    return {"requestedPrincipal": Principal(
        principalId=PrincipalId(id=info.principal_id, type=info.principal_type,
                                userId=info.user_id),
        principalName=info.name, status=info.status)}


def receipt_data(document: ReceiptDocument | None) -> tuple[str | None, bytes | None, str | None]:
    """(mimeType, receiptData, receiptType); an empty or absent receiptData is allowed."""
    if document is None:
        return None, None, None
    return document.mimeType, document.receiptData, document.receiptType


# --- the port: one wrapper for every method ------------------------------------------------


def return_type(method: Any) -> Any:
    """The `<return>` type of a port method (an `erswsResponse` extension)."""
    kind = method.out_message._type_info["return"]
    return getattr(kind, "__orig__", None) or kind


def invoke(call: Call, method: Any, arguments: list[Any]) -> dict[str, Any]:
    """Run a port method: its fields with resultCode 0 SUCCESS, or the result code it failed
    with. Business outcomes are answers, never faults."""
    try:
        fields = method.function(call, *arguments) or {}
        return {"resultCode": 0, "resultDescription": ResultCode.SUCCESS.name, **fields}
    except StrictRefusalError:
        raise
    except SeqrError as error:
        return {"resultCode": int(error.code), "resultDescription": error.description}
    except DBAPIError as error:  # the error's text (SQL, parameters) goes to the log only
        code = database_error_code(error)
        log.exception("database error")
        metrics.count_error(type(error.orig).__name__ if error.orig else type(error).__name__)
        return {"resultCode": int(code), "resultDescription": code.describe("database error")}
    except Exception as error:
        log.exception("unexpected error")
        metrics.count_error(type(error).__name__)
        code = ResultCode.SYSTEM_ERROR
        return {"resultCode": int(code), "resultDescription": code.describe("internal error")}


def unsupported(call: Call) -> None:
    raise SeqrError(ResultCode.UNSUPPORTED_OPERATION,
                    f"{call.operation} is not implemented by this gateway")


def operation(*args: Any, returns: Any) -> Any:
    """@rpc with the contract's wrapper names: `<op>`, `<op>Response`, `<return>`."""
    def contract(kind: Any) -> Any:
        return kind if kind.Attributes.sub_ns == "" else field(kind)

    return rpc(*(contract(a) for a in args), _returns=field(returns),
               _out_variable_name="return", _body_style="wrapped")


def methods() -> dict[str, Any]:
    """Every operation of the port type by name: its Spyne method descriptor."""
    return dict(ERSWSExternalClientService.public_methods)


def spyne_application() -> Application:
    """The port type as a Spyne application: what Spyne would make of the models (its WSDL,
    its serialisation). Never served; tests compare it with the official WSDL."""
    return Application([ERSWSExternalClientService], tns=NS,
                       name="ERSWSExternalClientServiceService",
                       in_protocol=Soap11(), out_protocol=Soap11())


Context = ClientContext


class ERSWSExternalClientService(ServiceBase):
    """Each method maps its wire arguments to one `Gateway` call and the result to the
    answer's fields; `invoke` makes the answer (and the result code of any failure)."""

    # --- reconciliation ---

    @operation(Context, ParameterMap, returns=ErswsMarkTransactionPeriodResponse)
    def markTransactionPeriod(call, context, parameters):
        period = call.gateway.mark_transaction_period(
            credentials(call, context), to_parameters(parameters))
        return {"ersReference": period, "transactionPeriodId": period}

    @operation(Context, Unicode, Unicode, ParameterMap, returns=ErswsExecuteReportResponse)
    def executeReport(call, context, reportId, language, parameters):
        return from_report(call, call.gateway.execute_report(
            credentials(call, context), reportId, to_parameters(parameters)))

    # --- terminals ---

    @operation(Context, Unicode, Unicode, Unicode, returns=ErswsRegisterTerminalResponse)
    def registerTerminal(call, context, externalTerminalId, password, name):
        return {"terminalId": call.gateway.register_terminal(
            credentials(call, context), externalTerminalId, password, name)}

    @operation(Context, returns=ErswsResponse)
    def unregisterTerminal(call, context):
        call.gateway.unregister_terminal(credentials(call, context))

    @operation(Context, Unicode, returns=ErswsResponse)
    def assignSeqrId(call, context, seqrId):
        call.gateway.assign_seqr_id(credentials(call, context), seqrId)

    @operation(returns=ErswsResponse)
    def benchmarkingNop(call):
        return None

    # --- payments ---

    @operation(Context, Invoice, many(CustomerToken), returns=ErswsSendInvoiceResponse)
    def sendInvoice(call, context, invoice, tokens):
        sent = call.gateway.send_invoice(credentials(call, context),
                                         register_invoice(call, invoice))
        return {"invoiceQRCode": sent.qr_code, "invoiceReference": sent.reference}

    @operation(Context, Unicode, Invoice, many(CustomerToken), returns=ErswsResponse)
    def updateInvoice(call, context, invoiceReference, invoice, tokens):
        call.gateway.update_invoice(credentials(call, context), invoiceReference,
                                    register_invoice(call, invoice))

    @operation(Context, Unicode, field(Integer32, 1), returns=ErswsPaymentStatusResponse)
    def getPaymentStatus(call, context, invoiceReference, invoiceVersion):
        return from_payment_status(call.gateway.get_payment_status(
            credentials(call, context), invoiceReference))

    @operation(Context, Unicode, returns=ErswsResponse)
    def cancelInvoice(call, context, invoiceReference):
        call.gateway.cancel_invoice(credentials(call, context), invoiceReference)

    @operation(Context, Unicode, returns=ErswsResponse)
    def commitReservation(call, context, invoiceReference):
        call.gateway.commit_reservation(credentials(call, context), invoiceReference)

    @operation(Context, Unicode, ReceiptDocument, returns=ErswsResponse)
    def submitPaymentReceipt(call, context, ersReference, receiptDocument):
        return {"ersReference": call.gateway.submit_payment_receipt(
            credentials(call, context), ersReference, *receipt_data(receiptDocument))}

    @operation(Context, Unicode, Invoice, returns=ErswsResponse)
    def refundPayment(call, context, ersReference, invoice):
        return {"ersReference": call.gateway.refund_payment(
            credentials(call, context), ersReference, to_invoice_data(invoice))}

    # --- principals ---

    @operation(Context, PrincipalId, returns=ErswsPrincipalInformationResponse)
    def requestPrincipalInformation(call, context, principalId):
        return from_principal(call.gateway.request_principal_information(
            credentials(call, context), principal_credentials(principalId)))

    @operation(Context, PrincipalId, Unicode, returns=ErswsResponse)
    def changePrincipalPassword(call, context, principalId, newPassword):
        call.gateway.change_principal_password(
            credentials(call, context), principal_credentials(principalId), newPassword)

    # --- outside a merchant's interface: always 91 ---

    @operation(Context, PrincipalId, PrincipalId, Unicode, returns=ErswsResponse)
    def confirmCustomerRegistration(
        call, context, principalId, secondaryPrincipalId, registrationReference
    ):
        unsupported(call)

    @operation(Context, PrincipalId, PrincipalId, PrincipalAccountSpecifier,
               PrincipalAccountSpecifier, many(PurchaseOrderRow), returns=ErswsPurchaseResponse)
    def requestPurchase(
        call, context, senderPrincipalId, receiverPrincipalId,
        senderAccountSpecifier, receiverAccountSpecifier, purchaseOrder,
    ):
        unsupported(call)

    @operation(Context, PrincipalId, PrincipalId, PrincipalAccountSpecifier,
               PrincipalAccountSpecifier, Unicode, Amount, returns=ErswsTopupResponse)
    def requestTopup(
        call, context, senderPrincipalId, topupPrincipalId,
        senderAccountSpecifier, topupAccountSpecifier, productId, amount,
    ):
        unsupported(call)

    @operation(Context, PrincipalId, PrincipalId, PrincipalAccountSpecifier,
               PrincipalAccountSpecifier, Unicode, Amount, returns=ErswsTransferResponse)
    def requestTransfer(
        call, context, senderPrincipalId, receiverPrincipalId,
        senderAccountSpecifier, receiverAccountSpecifier, productId, amount,
    ):
        unsupported(call)

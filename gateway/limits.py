"""How much a client may store: per field and per collection.

A string kept in a column may be as long as that column (its length is read from
`storage.models`, the one home of the schema), so SQLite, which does not enforce VARCHAR
lengths, and PostgreSQL, which refuses longer values with an error, behave alike: a value
over its limit is refused with a result code that names the field and the limit, and
nothing is stored. Values kept only inside the invoice's stored document (its rows, title,
footer, URLs) and receipt documents have limits of their own, so that no request can make
a stored document, and so every later poll that returns it, larger than these allow.
"""

from typing import Any

from gateway.errors import SeqrError
from storage.models import Invoice, Terminal, Transaction
from wsdl.resultcodes import ResultCode


def column_length(column: Any) -> int:
    length = column.type.length
    assert isinstance(length, int), column
    return length


#: invoice and refund cashierId (also a column of every transaction, and printed in reports)
CASHIER_ID = min(column_length(Invoice.cashier_id), column_length(Transaction.cashier_id))
CLIENT_INVOICE_ID = column_length(Invoice.client_invoice_id)
EXTERNAL_TERMINAL_ID = column_length(Terminal.external_terminal_id)
TERMINAL_NAME = column_length(Terminal.name)
RECEIPT_MIME_TYPE = column_length(Invoice.receipt_mime_type)
RECEIPT_TYPE = column_length(Invoice.receipt_type)

#: invoiceRow elements of one invoice
INVOICE_ROWS = 200
#: itemDescription, itemEAN, itemSKU, itemUnit of a row
ROW_TEXT = 200
#: an invoice's title and footer
INVOICE_TEXT = 500
#: backURL and notificationUrl
URL = 2000
#: a submitted receipt document's bytes (receiptData, decoded)
RECEIPT_BYTES = 256 * 1024


def check_length(value: str | bytes | None, limit: int, field: str,
                 code: ResultCode = ResultCode.INVALID_INVOICE_DATA, unit: str = "characters"
                 ) -> None:
    """Refuse (with `code`) a value longer than `limit`, naming the field and the limit."""
    if value is not None and len(value) > limit:
        raise SeqrError(code, f"{field} is longer than {limit} {unit} ({len(value)})")


def check_count(count: int, limit: int, field: str,
                code: ResultCode = ResultCode.INVALID_INVOICE_DATA) -> None:
    if count > limit:
        raise SeqrError(code, f"more than {limit} {field}")

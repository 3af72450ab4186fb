"""Real payments and refunds, across terminals and cashiers, in all six reports.

Totals are computed here, independently, from what the test did; the gateway's reports
must agree with them for the shop period and for every terminal period.
"""

from collections import defaultdict
from decimal import Decimal

import requests
import zeep

from client import BINDING
from tests.support.flows import poll_report, report_document
from tests.support.official import OFFICIAL_WSDL
from tests.support.servers import GatewayServer, Shop, terminal_context

ZERO = Decimal(0)


def _params(**entries: str) -> dict:
    return {"parameter": {"entry": [{"key": k, "value": v} for k, v in entries.items()]}}


def _invoice(amount: str, cashier: str | None) -> dict:
    return {
        "paymentMode": "IMMEDIATE_DEBIT", "acknowledgmentMode": "NO_ACKNOWLEDGMENT",
        "title": "Sale",
        "invoiceRows": {"invoiceRow": [{"itemDescription": "Item", "itemQuantity": Decimal(1),
                                        "itemTotalAmount": {"currency": "SEK",
                                                            "value": Decimal(amount)}}]},
        "totalAmount": {"currency": "SEK", "value": Decimal(amount)},
        "cashierId": cashier,
    }


class Till:
    def __init__(self, soap, server: GatewayServer, shop: Shop, label: str) -> None:
        self.soap, self.server = soap, server
        self.id = soap.registerTerminal(shop.context(), label, "till-pw", label).terminalId
        self.ctx = terminal_context(self.id, "till-pw")

    def sell(self, amount: str, cashier: str | None) -> str:
        sent = self.soap.sendInvoice(self.ctx, _invoice(amount, cashier))
        assert sent.resultCode == 0, sent.resultDescription
        paid = requests.post(f"{self.server.base}/simulator/invoices/"
                             f"{sent.invoiceReference}/pay", timeout=10)
        assert paid.status_code == 200, paid.text
        status = self.soap.getPaymentStatus(self.ctx, sent.invoiceReference, 1)
        assert status.status == "PAID"
        return status.ersReference

    def refund(self, payment: str, amount: str, cashier: str | None) -> str:
        invoice = {"totalAmount": {"currency": "SEK", "value": Decimal(amount)},
                   "cashierId": cashier}
        answer = self.soap.refundPayment(self.ctx, payment, invoice)
        assert answer.resultCode == 0, answer.resultDescription
        return answer.ersReference


class Ledger:
    """What the test did: (reference, terminal, cashier, signed amount), in order."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, Decimal]] = []

    def add(self, reference: str, terminal: str, cashier: str | None, amount: str) -> None:
        self.rows.append((reference, terminal, cashier or "NULL", Decimal(amount)))

    def totals(self, rows=None, key=None) -> dict:
        out: dict = defaultdict(lambda: [0, ZERO, 0, ZERO])
        for row in self.rows if rows is None else rows:
            bucket = out[key(row) if key else None]
            if row[3] > 0:
                bucket[0] += 1
                bucket[1] += row[3]
            else:
                bucket[2] += 1
                bucket[3] += row[3]
        return {k: tuple(v) for k, v in out.items()}


def _numbers(row) -> tuple:
    return (int(row.findtext("SalesCount")), Decimal(row.findtext("SalesTotal")),
            int(row.findtext("RefundCount")), Decimal(row.findtext("RefundTotal")))


def test_every_report_agrees_with_what_the_registers_did(server: GatewayServer,
                                                        shop: Shop) -> None:
    soap = zeep.Client(str(OFFICIAL_WSDL)).create_service(BINDING, server.endpoint)
    tills = [Till(soap, server, shop, f"Till {i}") for i in range(3)]
    ledger = Ledger()
    before_terminal_mark = Ledger()

    def sale(till: Till, amount: str, cashier: str | None) -> str:
        reference = till.sell(amount, cashier)
        ledger.add(reference, till.id, cashier, amount)
        return reference

    def refund(till: Till, payment: str, amount: str, cashier: str | None) -> None:
        ledger.add(till.refund(payment, amount, cashier), till.id, cashier, "-" + amount)

    first = sale(tills[0], "100.00", "anna")
    sale(tills[0], "12.34", None)
    other = sale(tills[1], "55.55", "bob")
    refund(tills[0], first, "30.00", "anna")
    before_terminal_mark.rows = list(ledger.rows)
    # the first till closes its own period in the middle of the day
    early = soap.markTransactionPeriod(tills[0].ctx, _params(TERMINALID=tills[0].id))
    assert early.resultCode == 0
    sale(tills[0], "8.00", "bob")
    refund(tills[2], other, "5.55", None)  # refunded at another till
    refund(tills[1], first, "70.00", "bob")  # the rest of the first payment
    sale(tills[2], "0.01", "carl")
    for i in range(5):
        sale(tills[i % 3], f"{i + 1}.{i}0", ["anna", "bob", None][i % 3])

    shop_period = soap.markTransactionPeriod(shop.context(), None).transactionPeriodId
    terminal_periods = {
        till.id: soap.markTransactionPeriod(shop.context(), _params(TERMINALID=till.id))
        .transactionPeriodId
        for till in tills
    }

    def fetch(report: str, period: str, ctx=None, **extra: str):
        answer = poll_report(lambda: soap.executeReport(
            ctx or shop.context(), report, "en", _params(transactionPeriodId=period, **extra)))
        return report_document(answer, report, period)

    (total,) = fetch("STD_RECON_001", shop_period).findall("Row")
    assert _numbers(total) == ledger.totals()[None]
    by_terminal = {r.findtext("TerminalId"): _numbers(r)
                   for r in fetch("STD_RECON_002", shop_period).findall("Row")}
    assert by_terminal == ledger.totals(key=lambda row: row[1])
    details = [(r.findtext("ErsReference"), r.findtext("TerminalId"), r.findtext("CashierId"),
                Decimal(r.findtext("SalesAmount")))
               for r in fetch("STD_RECON_003", shop_period).findall("Row")]
    assert details == ledger.rows
    by_cashier = {r.findtext("CashierId"): _numbers(r)
                  for r in fetch("STD_RECON_004", shop_period).findall("Row")}
    assert by_cashier == ledger.totals(key=lambda row: row[2])

    # terminal periods: the first till's early period, then what came after it
    early_rows = [r for r in before_terminal_mark.rows if r[1] == tills[0].id]
    summary = fetch("STD_RECON_006", early.transactionPeriodId, tills[0].ctx,
                    TERMINALID=tills[0].id)
    assert [_numbers(r) for r in summary.findall("Row")] == [
        ledger.totals(early_rows)[None]]
    for till in tills:
        expected = [r for r in ledger.rows if r[1] == till.id and r not in early_rows]
        rows = fetch("STD_RECON_007", terminal_periods[till.id], till.ctx,
                     TERMINALID=till.id).findall("Row")
        assert [r.findtext("ErsReference") for r in rows] == [r[0] for r in expected]
        (row,) = fetch("STD_RECON_006", terminal_periods[till.id], TERMINALID=till.id
                       ).findall("Row")
        assert _numbers(row) == ledger.totals(expected)[None]

    # every transaction in exactly one shop period: the next shop period is empty
    empty = soap.markTransactionPeriod(shop.context(), None).transactionPeriodId
    assert fetch("STD_RECON_003", empty).findall("Row") == []
    assert len({r[0] for r in ledger.rows}) == len(ledger.rows) == 13  # 10 sales, 3 refunds


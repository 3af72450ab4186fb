"""The certification walk-through driven by a non-Python SOAP stack: PHP's SoapClient.

The webshop plugins (PrestaShop, WooCommerce, Magento, OpenCart) talked to SEQR through
PHP's SoapClient, built from the WSDL. tests/clients/certification.php is such a register:
it loads the gateway's `?wsdl`, plays the point-of-sale certification steps against a real
server, and prints what it saw. `.ci/run` installs php-cli and php-soap; outside CI the
test is skipped when they are missing, in CI (CI set) it fails instead.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from tests.support.envelopes import PERIOD_RE
from tests.support.servers import GatewayServer, make_shop

pytestmark = [pytest.mark.e2e, pytest.mark.once]  # .ci/run runs it on every supported Python

SCRIPT = Path(__file__).resolve().parent / "clients" / "certification.php"


def php_with_soap() -> str | None:
    """The php binary, if it has the soap extension."""
    php = shutil.which("php")
    if php is None:
        return None
    modules = subprocess.run([php, "-m"], capture_output=True, text=True, timeout=30).stdout
    return php if "soap" in modules.split() else None


@pytest.fixture(scope="module")
def php() -> str:
    found = php_with_soap()
    if found is None:
        message = "PHP with the soap extension is missing (apt-get install php-cli php-soap)"
        if os.environ.get("CI"):
            pytest.fail(message + ": .ci/run should have installed it")
        pytest.skip(message)
    return found


def test_php_soapclient_certification_walk_through(php: str, server: GatewayServer) -> None:
    shop = make_shop(server.db)
    run = subprocess.run([php, str(SCRIPT), server.endpoint, shop.reseller_id, shop.password,
                          server.base], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr + run.stdout
    seen = json.loads(run.stdout)

    assert re.fullmatch(r"[0-9a-f]{32}", seen["terminalId"])
    assert re.fullmatch(r"HTTP://SEQR\.SE/R\d{13}", seen["qr"])
    assert seen["before"] == ["ISSUED", 1] and seen["after"] == ["PAID", 2]
    assert PERIOD_RE.match(seen["payment"])
    assert seen["receiptPaymentReference"] == seen["payment"]
    assert seen["receiptTotal"] in ("25.00", "25.00000", "25")
    assert seen["previous"] == "CANCELED"  # a cash register's repeat replaced it
    assert seen["canceled"] == "CANCELED"
    assert PERIOD_RE.match(seen["refund"]) and seen["refund"] != seen["secondPayment"]
    assert seen["title"] == f"STD_RECON_007_{seen['period']}.xml"
    rows = etree.fromstring(seen["document"].encode()).findall("Row")
    assert [[r.findtext(f) for f in ("ErsReference", "CashierId", "SalesAmount")]
            for r in rows] == [
        [seen["payment"], "cashier-1", "25.00000"],
        [seen["secondPayment"], "cashier-1", "40.00000"],
        [seen["refund"], "NULL", "-15.00000"],
    ]
    assert seen["afterUnregister"] == 33
    # PHP's own prefixes on the way in, the manual's on the way out
    assert seen["lastRequest"].count("<SOAP-ENV:Envelope") == 1
    assert "<ns1:getPaymentStatus>" in seen["lastRequest"]
    assert seen["lastResponse"].startswith('<soap:Envelope xmlns:soap="')
    assert "<ns2:getPaymentStatusResponse " in seen["lastResponse"]

<?php
// SEQR's certification walk-through for a point of sale, as a PHP register does it: PHP's
// own SoapClient built from the WSDL the gateway serves (the official one), as the
// PrestaShop, WooCommerce, Magento and OpenCart plugins built theirs. The buyer's steps go
// to the gateway's simulator. Prints what it saw as JSON; exits non-zero on any surprise.
//
//   php certification.php ENDPOINT RESELLER_ID RESELLER_PASSWORD SIMULATOR_BASE_URL

ini_set('soap.wsdl_cache_enabled', '0');
[$script, $endpoint, $resellerId, $resellerPassword, $simulator] = $argv;

function fail(string $why): void {
    fwrite(STDERR, "certification.php: $why\n");
    exit(1);
}

function ok($answer, string $step) {
    if (!isset($answer->return) || $answer->return->resultCode !== 0) {
        fail("$step: " . json_encode($answer));
    }
    return $answer->return;
}

function buyer(string $simulator, string $path): array {
    $context = stream_context_create(['http' => [
        'method' => 'POST', 'header' => "Content-Length: 0\r\n", 'ignore_errors' => true]]);
    $body = file_get_contents("$simulator/simulator/$path", false, $context);
    if ($body === false || strpos($http_response_header[0], ' 200 ') === false) {
        fail("simulator $path: " . ($http_response_header[0] ?? 'no answer') . " $body");
    }
    return json_decode($body, true);
}

function context(string $type, string $id, string $password, ?string $userId = null): array {
    $principal = ['id' => $id, 'type' => $type];
    if ($userId !== null) {
        $principal['userId'] = $userId;
    }
    return ['channel' => 'WS', 'clientId' => 'php-soapclient', 'clientReference' => 'cert',
            'clientRequestTimeout' => 0, 'initiatorPrincipalId' => $principal,
            'password' => $password];
}

function invoice(string $total, array $rows): array {
    $invoiceRows = [];
    foreach ($rows as [$name, $quantity, $amount]) {
        $invoiceRows[] = ['itemDescription' => $name, 'itemQuantity' => $quantity,
                          'itemTotalAmount' => ['currency' => 'SEK', 'value' => $amount]];
    }
    return ['paymentMode' => 'IMMEDIATE_DEBIT', 'acknowledgmentMode' => 'NO_ACKNOWLEDGMENT',
            'title' => 'Certification', 'clientInvoiceId' => 'cert-' . bin2hex(random_bytes(4)),
            'invoiceRows' => ['invoiceRow' => $invoiceRows],
            'totalAmount' => ['currency' => 'SEK', 'value' => $total], 'cashierId' => 'cashier-1'];
}

function params(array $entries): array {
    $list = [];
    foreach ($entries as $key => $value) {
        $list[] = ['key' => $key, 'value' => $value];
    }
    return ['parameter' => ['entry' => $list]];
}

$soap = new SoapClient("$endpoint?wsdl", ['trace' => true, 'exceptions' => true,
                                          'cache_wsdl' => WSDL_CACHE_NONE]);
$shop = context('RESELLERUSER', $resellerId, $resellerPassword, '9900');
$seen = [];

// 1. registerTerminal as RESELLERUSER
$terminalId = ok($soap->registerTerminal(['context' => $shop, 'externalTerminalId' => 'Store 1/PHP',
    'password' => 'php-till', 'name' => 'PHP till']), 'registerTerminal')->terminalId;
$till = context('TERMINALID', $terminalId, 'php-till');
$seen['terminalId'] = $terminalId;
// 2. assignSeqrId
$seqrId = 'PHP' . strtoupper(bin2hex(random_bytes(5)));
ok($soap->assignSeqrId(['context' => $till, 'seqrId' => $seqrId]), 'assignSeqrId');
// 3. sendInvoice with rows
$sale = ok($soap->sendInvoice(['context' => $till, 'invoice' => invoice('25.00',
    [['Coffee', '1', '20.00'], ['Bun', '1', '5.00']])]), 'sendInvoice');
$seen['qr'] = $sale->invoiceQRCode;
// 4. getPaymentStatus before the scan, the buyer scans the sticker and pays, again
$issued = ok($soap->getPaymentStatus(['context' => $till,
    'invoiceReference' => $sale->invoiceReference, 'invoiceVersion' => 0]), 'getPaymentStatus');
$seen['before'] = [$issued->status, $issued->version];
buyer($simulator, "seqr-ids/$seqrId/pay");
$paid = ok($soap->getPaymentStatus(['context' => $till,
    'invoiceReference' => $sale->invoiceReference, 'invoiceVersion' => $issued->version]),
    'getPaymentStatus');
$seen['after'] = [$paid->status, $paid->version];
$payment = $paid->ersReference;
$seen['payment'] = $payment;
$seen['receiptPaymentReference'] = $paid->receipt->paymentReference;
$seen['receiptTotal'] = (string) $paid->receipt->invoice->totalAmount->value;
//    repeat sendInvoice; the previous invoiceReference is no longer live
$previous = ok($soap->sendInvoice(['context' => $till, 'invoice' => invoice('9.00',
    [['Tea', '1', '9.00']])]), 'sendInvoice');
$replacement = ok($soap->sendInvoice(['context' => $till, 'invoice' => invoice('7.00',
    [['Juice', '1', '7.00']])]), 'sendInvoice');
$seen['previous'] = ok($soap->getPaymentStatus(['context' => $till,
    'invoiceReference' => $previous->invoiceReference, 'invoiceVersion' => 1]),
    'getPaymentStatus')->status;
// 5. submitPaymentReceipt after PAID, without content
ok($soap->submitPaymentReceipt(['context' => $till, 'ersReference' => $payment,
    'receiptDocument' => ['mimeType' => 'Base64', 'receiptData' => '',
                          'receiptType' => 'PAYMENT_RECEIPT']]), 'submitPaymentReceipt');
// 6. sendInvoice (the replacement is live), getPaymentStatus, cancelInvoice
ok($soap->getPaymentStatus(['context' => $till,
    'invoiceReference' => $replacement->invoiceReference, 'invoiceVersion' => 0]),
    'getPaymentStatus');
ok($soap->cancelInvoice(['context' => $till,
    'invoiceReference' => $replacement->invoiceReference]), 'cancelInvoice');
$seen['canceled'] = ok($soap->getPaymentStatus(['context' => $till,
    'invoiceReference' => $replacement->invoiceReference, 'invoiceVersion' => 1]),
    'getPaymentStatus')->status;
// 7. sendInvoice, pay, refundPayment (part of it)
$second = ok($soap->sendInvoice(['context' => $till, 'invoice' => invoice('40.00',
    [['Mug', '2', '40.00']])]), 'sendInvoice');
buyer($simulator, "invoices/{$second->invoiceReference}/pay");
$secondPayment = ok($soap->getPaymentStatus(['context' => $till,
    'invoiceReference' => $second->invoiceReference, 'invoiceVersion' => 1]),
    'getPaymentStatus')->ersReference;
$refund = ok($soap->refundPayment(['context' => $till, 'ersReference' => $secondPayment,
    'invoice' => ['totalAmount' => ['currency' => 'SEK', 'value' => '15.00']]]),
    'refundPayment')->ersReference;
$seen['secondPayment'] = $secondPayment;
$seen['refund'] = $refund;
// 8. markTransactionPeriod when closing the register, then executeReport until ready
$period = ok($soap->markTransactionPeriod(['context' => $till,
    'parameters' => params(['TERMINALID' => $terminalId])]), 'markTransactionPeriod')
    ->transactionPeriodId;
$seen['period'] = $period;
$deadline = microtime(true) + 20;
do {
    $report = $soap->executeReport(['context' => $till,
        'reportId' => 'Reconciliation/STD_RECON_007.xml', 'language' => 'en',
        'parameters' => params(['transactionPeriodId' => $period, 'TERMINALID' => $terminalId])]);
    if ($report->return->resultCode === 2) {
        usleep(200000);
    }
} while ($report->return->resultCode === 2 && microtime(true) < $deadline);
$document = ok($report, 'executeReport')->report;
if ($document->content !== $document->contentString) {
    fail('content (base64, decoded by SoapClient) differs from contentString');
}
$seen['title'] = $document->title;
$seen['document'] = $document->contentString;
// 9. unregisterTerminal
ok($soap->unregisterTerminal(['context' => $till]), 'unregisterTerminal');
$seen['afterUnregister'] = $soap->getPaymentStatus(['context' => $till,
    'invoiceReference' => $sale->invoiceReference, 'invoiceVersion' => 2])->return->resultCode;
$seen['lastRequest'] = $soap->__getLastRequest();
$seen['lastResponse'] = $soap->__getLastResponse();

echo json_encode($seen), "\n";

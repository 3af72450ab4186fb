from tests.conftest import GatewayServer, parse_response, sample, text_of


def test_health_and_mark_over_http(server: GatewayServer, shop) -> None:
    response = server.post(sample("markTransactionPeriod-shop.xml", RESELLER_ID=shop.reseller_id,
                                  RESELLER_PASSWORD=shop.password))
    assert response.status_code == 200
    ret = parse_response(response.content)
    assert text_of(ret, "resultCode") == "0"

from tests.support.envelopes import parse_response, text_of
from tests.support.official import sample
from tests.support.servers import GatewayServer, Shop


def test_the_server_runs_on_the_backend_under_test(server: GatewayServer, shop: Shop,
                                                   database_backend: str) -> None:
    assert server.db.engine.dialect.name == database_backend
    response = server.post(sample("markTransactionPeriod-shop.xml", RESELLER_ID=shop.reseller_id,
                                  RESELLER_PASSWORD=shop.password))
    assert response.status_code == 200
    ret = parse_response(response.content)
    assert text_of(ret, "resultCode") == "0"

"""Checks on raw SOAP answers as a client sees them on the wire: status, content type, one
unqualified `<return>` valid against the official schema, its children in the official order.
"""

import re
from typing import Any

from lxml import etree

from tests.support.envelopes import NS, SOAP_ENV, context_xml, envelope, text_of
from tests.support.official import all_fields, official_schema, official_xml_schema, type_name
from tests.support.servers import GatewayServer, Shop

TERMINAL_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def assert_return_order(operation: str, ret: Any) -> None:
    """`<return>`'s children follow the official type: ersReference?, resultCode,
    resultDescription?, then the extension's fields, each where the schema puts it."""
    names = [child.tag for child in ret]
    assert re.fullmatch(r"(ersReference,)?resultCode(,resultDescription)?(,.*)?",
                        ",".join(names)), names
    schema = official_schema()
    (wrapper,) = schema["complexTypes"][type_name(schema["elements"][f"{operation}Response"])][
        "fields"]
    assert wrapper[0] == "return"
    fields = all_fields(schema, type_name(wrapper[1]))
    assert [f[0] for f in fields[:3]] == ["ersReference", "resultCode", "resultDescription"]
    position, matched = 0, set()
    for name in names:
        while position < len(fields) and fields[position][0] != name:
            assert fields[position][2] == 0, f"required {fields[position][0]} missing: {names}"
            position += 1
        assert position < len(fields), f"{name} out of order or unknown: {names}"
        matched.add(name)
        if fields[position][3] != "unbounded":  # a repeatable field may come again
            position += 1
    missing = [f[0] for f in fields[position:] if f[2] > 0 and f[0] not in matched]
    assert not missing, f"required {missing} missing: {names}"


MANUAL_START = (f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>'
                f'<ns2:{{operation}}Response xmlns:ns2="{NS}"><return>')
MANUAL_END = "</return></ns2:{operation}Response></soap:Body></soap:Envelope>"


def check_response(response: Any, operation: str) -> Any:
    """The raw HTTP answer of `operation`, checked on the wire; its `<return>` element.

    The bytes are the manual's (chapter 5): `soap:` envelope, `ns2:` wrapper declaring its
    namespace, `<return>` and everything below it without a namespace, elements in the
    official order, the whole payload valid against the official WSDL's schema."""
    assert response.status_code == 200, response.content
    assert response.headers["Content-Type"].startswith("text/xml"), response.headers
    text = response.content.decode("utf-8")
    assert text.startswith(MANUAL_START.format(operation=operation)), text[:300]
    assert text.endswith(MANUAL_END.format(operation=operation)), text[-300:]
    root = etree.fromstring(response.content)
    assert root.tag == f"{{{SOAP_ENV}}}Envelope"
    bodies = root.findall(f"{{{SOAP_ENV}}}Body")
    assert len(bodies) == 1
    payloads = [child for child in bodies[0] if isinstance(child.tag, str)]
    assert len(payloads) == 1, [c.tag for c in payloads]
    payload = payloads[0]
    assert payload.tag == f"{{{NS}}}{operation}Response"
    children = [child for child in payload if isinstance(child.tag, str)]
    assert [child.tag for child in children] == ["return"]  # no namespace
    ret = children[0]
    for node in ret.iter():
        if isinstance(node.tag, str):
            assert etree.QName(node).namespace is None, f"qualified {node.tag}"
            assert dict(node.attrib) == {}, f"{node.tag} carries {dict(node.attrib)}"
    schema = official_xml_schema()
    assert schema.validate(payload), schema.error_log
    assert_return_order(operation, ret)
    return ret


def result(ret: Any) -> tuple[int, str]:
    return int(text_of(ret, "resultCode") or "-1"), text_of(ret, "resultDescription") or ""


def register_terminal(server: GatewayServer, shop: Shop) -> str:
    inner = (context_xml(shop.reseller_id, password=shop.password)
             + "<externalTerminalId>Store 111/Till 4</externalTerminalId>"
             "<password>till-pw</password><name>Till 4</name>")
    ret = check_response(server.post(envelope("registerTerminal", inner)), "registerTerminal")
    assert result(ret) == (0, "SUCCESS")
    terminal_id = text_of(ret, "terminalId")
    assert terminal_id is not None and TERMINAL_ID_RE.match(terminal_id)
    return terminal_id


def call(server: GatewayServer, operation: str, inner: str) -> Any:
    """Post `operation` after checking the envelope is schema-valid; the checked `<return>`."""
    body = envelope(operation, inner)
    request = etree.fromstring(body.encode()).find(f"{{{SOAP_ENV}}}Body")[0]
    schema = official_xml_schema()
    assert schema.validate(request), f"test envelope is not schema-valid: {schema.error_log}"
    return check_response(server.post(body), operation)

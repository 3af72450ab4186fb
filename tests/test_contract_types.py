"""The contract, type by type: the WSDL we serve and the Spyne models against the official file.

`normalise_schema` turns an `xs:schema` into plain data: for every global element its type,
for every complexType its extension base and the ordered list of its elements as
(name, type, minOccurs, maxOccurs, nillable), anonymous inline complexTypes expanded in
place, and for every simpleType its restriction. The normaliser refuses any construct it
does not understand (choice, all, any, attributes, refs, ...), so nothing can slip through
a comparison by being ignored. The official WSDL is the one in wsdl/
(tests/test_self_contained.py pins its checksum).
"""

import copy
import datetime
import decimal
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from lxml import etree
from spyne.interface.wsdl import Wsdl11
from spyne.model.binary import ByteArray
from spyne.model.complex import ComplexModelBase
from spyne.model.enum import EnumBase
from spyne.model.primitive import DateTime, Decimal, Integer, Unicode
from spyne.util.xml import get_object_as_xml

from gateway.wire import contract, envelope
from gateway.wire.app import SOAP_PATHS
from gateway.wire.contract import ERSWSExternalClientService, return_type, spyne_application
from gateway.wire.deviations import Deviation
from gateway.wire.reading import Reader
from tests.support.envelopes import NS
from tests.support.official import (
    ANONYMOUS_WRAPPERS,
    XSD,
    normalise_schema,
    normalise_wsdl,
    official_operations,
    official_root,
    official_schema,
    official_xml_schema,
    schema_of,
    type_name,
    x,
)
from tests.support.servers import GatewayServer

pytestmark = pytest.mark.once

# --- the normaliser ------------------------------------------------------------------------


# --- helpers over normalised schemas -----------------------------------------------------


def expand(schema: dict[str, Any], kind: Any, seen: tuple[str, ...] = ()) -> Any:
    """A type with every named complex type inlined: its full structure, names aside."""
    if isinstance(kind, dict):  # an anonymous type
        struct = kind["anonymous"]
    elif kind.startswith("xs:"):
        return kind
    elif type_name(kind) in schema["simpleTypes"]:
        return schema["simpleTypes"][type_name(kind)]
    else:
        assert type_name(kind) not in seen, f"recursive type {kind}"
        seen = (*seen, type_name(kind))
        struct = schema["complexTypes"][type_name(kind)]
    return {
        "base": expand(schema, struct["base"], seen) if struct["base"] else None,
        "fields": [
            (n, expand(schema, t, seen), lo, hi, nil) for n, t, lo, hi, nil in struct["fields"]
        ],
    }


def inline_types(schema: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """A copy where references to the named complexTypes `names` become anonymous types."""
    def fix(struct: dict[str, Any]) -> dict[str, Any]:
        fields = []
        for n, t, lo, hi, nil in struct["fields"]:
            if isinstance(t, str) and t.startswith("tns:") and type_name(t) in names:
                t = {"anonymous": fix(schema["complexTypes"][type_name(t)])}
            elif isinstance(t, dict):
                t = {"anonymous": fix(t["anonymous"])}
            fields.append((n, t, lo, hi, nil))
        return {"base": struct["base"], "fields": fields}

    result = copy.deepcopy(schema)
    result["complexTypes"] = {
        name: fix(struct) for name, struct in schema["complexTypes"].items() if name not in names
    }
    return result


def without_nillable(value: Any) -> Any:
    """The structure with every field's nillable flag dropped (set to None)."""
    if isinstance(value, dict):
        return {k: without_nillable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nillable(v) for v in value]
    if isinstance(value, tuple) and len(value) == 5 and isinstance(value[4], bool):
        name, kind, lo, hi, _ = value
        return (name, without_nillable(kind), lo, hi, None)
    return value


def spyne_view(spyne: dict[str, Any]) -> dict[str, Any]:
    """Spyne's schema brought to the official file's representation, where only that differs.

    - Spyne cannot write anonymous inline types: the official anonymous `invoiceRows`,
      `accounts` and `customerTokens` are named types in gateway.wire.contract. Inlining them
      changes nothing on the wire (an element's type name never travels).
    - Spyne writes `elementFormDefault="qualified"` whatever the fields say: children travel
      unqualified because every field is customised with `sub_ns=""`, which its schema
      generator does not express. test_spyne_fields_are_unqualified checks the models, the
      wire tests check the bytes.
    - Spyne also declares a global element for every type; only the official ones count.
    - nillable is ignored: the models never send xsi:nil (absent means not given).
    """
    extra = set(spyne["complexTypes"]) - set(official_schema()["complexTypes"])
    view = inline_types(spyne, extra)
    view["elementFormDefault"] = "unqualified"
    return without_nillable(view)


def spyne_differences(official: dict[str, Any], spyne: dict[str, Any]) -> list[str]:
    """Every way Spyne's (normalised) schema falls short of the official one; [] when none."""
    view, official = spyne_view(spyne), without_nillable(official)
    problems = []
    for key in ("targetNamespace", "elementFormDefault"):
        if view[key] != official[key]:
            problems.append(f"{key}: spyne {view[key]!r} != official {official[key]!r}")
    for name, struct in official["complexTypes"].items():
        if view["complexTypes"].get(name) != struct:
            problems.append(f"complexType {name}: spyne {view['complexTypes'].get(name)} "
                            f"!= official {struct}")
    for name, struct in official["simpleTypes"].items():
        if view["simpleTypes"].get(name) != struct:
            problems.append(f"simpleType {name}: spyne {view['simpleTypes'].get(name)} "
                            f"!= official {struct}")
    for name, kind in official["elements"].items():
        if name not in view["elements"]:
            problems.append(f"global element {name} missing from Spyne's schema")
        elif expand(view, view["elements"][name]) != expand(official, kind):
            problems.append(f"global element {name}: structure differs")
    return problems


# --- unit tests of the normaliser: it sees every kind of change ----------------------------


def test_normaliser_reads_the_official_schema() -> None:
    schema = official_schema()
    assert len(schema["elements"]) == 38
    assert schema["complexTypes"]["erswsResponse"] == {"base": None, "fields": [
        ("ersReference", "xs:string", 0, 1, False),
        ("resultCode", "xs:int", 1, 1, False),
        ("resultDescription", "xs:string", 0, 1, False),
    ]}
    assert schema["complexTypes"]["erswsMarkTransactionPeriodResponse"] == {
        "base": "tns:erswsResponse",
        "fields": [("transactionPeriodId", "xs:string", 0, 1, False)],
    }
    rows = schema["complexTypes"]["invoice"]["fields"][5]
    assert rows == ("invoiceRows", {"anonymous": {"base": None, "fields": [
        ("invoiceRow", "tns:paymentInvoiceRow", 0, "unbounded", False)]}}, 0, 1, False)
    assert schema["complexTypes"]["benchmarkingNop"] == {"base": None, "fields": []}
    assert schema["simpleTypes"]["paymentMode"]["enumeration"] == [
        "IMMEDIATE_DEBIT", "RESERVATION_DESIRED", "RESERVATION_REQUIRED"]
    purchased = schema["complexTypes"]["erswsPurchaseResponse"]["fields"][2]
    assert purchased == ("purchasedProducts", "tns:principalPurchaseProductSpecifier",
                         0, "unbounded", True)


def _field(schema: Any, type_name: str, field_name: str) -> Any:
    found = schema.xpath(f"xs:complexType[@name='{type_name}']//xs:element[@name='{field_name}']",
                         namespaces={"xs": XSD})
    assert len(found) == 1, (type_name, field_name)
    return found[0]


def _drop(schema: Any) -> str:
    node = _field(schema, "clientContext", "password")
    node.getparent().remove(node)
    return "clientContext"


def _rename(schema: Any) -> str:
    _field(schema, "amount", "value").set("name", "amountValue")
    return "amount"


def _reorder(schema: Any) -> str:
    node = _field(schema, "report", "mimeType")
    parent = node.getparent()
    parent.remove(node)
    parent.append(node)
    return "report"


def _retype(schema: Any) -> str:
    _field(schema, "report", "content").set("type", "xs:string")
    return "report"


def _required(schema: Any) -> str:
    del _field(schema, "erswsResponse", "ersReference").attrib["minOccurs"]
    return "erswsResponse"


def _optional(schema: Any) -> str:
    _field(schema, "getPaymentStatus", "invoiceVersion").set("minOccurs", "0")
    return "getPaymentStatus"


def _single(schema: Any) -> str:
    del _field(schema, "mapArray", "entry").attrib["maxOccurs"]
    return "mapArray"


def _nillable(schema: Any) -> str:
    del _field(schema, "erswsPurchaseResponse", "purchasedProducts").attrib["nillable"]
    return "erswsPurchaseResponse"


def _base(schema: Any) -> str:
    node = schema.xpath("xs:complexType[@name='erswsRegisterTerminalResponse']//xs:extension",
                        namespaces={"xs": XSD})[0]
    node.set("base", "tns:erswsMarkTransactionPeriodResponse")
    return "erswsRegisterTerminalResponse"


def _anonymous(schema: Any) -> str:
    _field(schema, "invoice", "invoiceRow").set("type", "tns:amount")
    return "invoice"


def _nested_name(schema: Any) -> str:
    _field(schema, "principal", "account").set("name", "accountz")
    return "principal"


MUTATIONS = [_drop, _rename, _reorder, _retype, _required, _optional, _single, _nillable,
             _base, _anonymous, _nested_name]


@pytest.mark.parametrize("mutate", MUTATIONS, ids=lambda f: f.__name__.strip("_"))
def test_normaliser_detects_a_changed_field(mutate: Any) -> None:
    schema = copy.deepcopy(schema_of(official_root()))
    changed_type = mutate(schema)
    mutated, official = normalise_schema(schema), official_schema()
    assert mutated != official
    assert mutated["complexTypes"][changed_type] != official["complexTypes"][changed_type]
    differing = [n for n in official["complexTypes"]
                 if mutated["complexTypes"][n] != official["complexTypes"][n]]
    assert differing == [changed_type]


def test_normaliser_detects_changed_enumerations_and_elements() -> None:
    schema = copy.deepcopy(schema_of(official_root()))
    ns = {"xs": XSD}
    value = schema.xpath("xs:simpleType[@name='invoiceStatus']//xs:enumeration", namespaces=ns)[2]
    value.getparent().remove(value)
    schema.xpath("xs:element[@name='executeReportResponse']", namespaces=ns)[0].set(
        "type", "tns:registerTerminalResponse")
    mutated, official = normalise_schema(schema), official_schema()
    assert mutated["simpleTypes"]["invoiceStatus"] != official["simpleTypes"]["invoiceStatus"]
    name = "executeReportResponse"
    assert mutated["elements"][name] != official["elements"][name]


def test_normaliser_refuses_what_it_does_not_understand() -> None:
    schema = copy.deepcopy(schema_of(official_root()))
    sequence = schema.xpath("xs:complexType[@name='amount']/xs:sequence",
                            namespaces={"xs": XSD})[0]
    sequence.tag = x("choice")
    with pytest.raises(AssertionError, match="unsupported model group choice"):
        normalise_schema(schema)


# --- 1a: the WSDL we serve is the official one ---------------------------------------------


@pytest.mark.parametrize("path", SOAP_PATHS)
def test_served_wsdl_is_the_official_contract(server: GatewayServer, path: str) -> None:
    url = server.base + path
    response = requests.get(url + "?wsdl", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/xml")
    served = normalise_wsdl(etree.fromstring(response.content))
    official = normalise_wsdl(official_root())

    assert served["addresses"] == [url]  # soap:address is the URL asked, nothing else
    served.pop("addresses"), official.pop("addresses")

    assert served["portTypes"] == official["portTypes"]
    assert set(served["portTypes"]["ERSWSExternalClientService"]) == set(official_operations())
    assert served["messages"] == official["messages"]
    assert served["bindings"] == official["bindings"]
    operations = served["bindings"]["ERSWSExternalClientServiceServiceSoapBinding"]["operations"]
    assert len(operations) == 19
    assert {op["soapAction"] for op in operations.values()} == {""}
    assert served["services"] == official["services"]
    for part in ("elements", "simpleTypes", "complexTypes"):
        assert served["schema"][part].keys() == official["schema"][part].keys(), part
        for name, struct in official["schema"][part].items():
            assert served["schema"][part][name] == struct, f"{part} {name}"
    assert served == official


# --- 1b: the Spyne models are the official types -------------------------------------------


@pytest.fixture(scope="module")
def spyne_app() -> Any:
    """The port type as a Spyne application (namespaces resolved, as Spyne would serve it)."""
    return spyne_application()


@pytest.fixture(scope="module")
def spyne_wsdl(spyne_app: Any) -> Any:
    """The WSDL Spyne would generate for our models (never served: it is only a mirror)."""
    document = Wsdl11(spyne_app.interface)
    document.build_interface_document("http://localhost/extclientproxy/service/v2")
    return etree.fromstring(document.get_interface_document())


@pytest.fixture(scope="module")
def spyne_schema(spyne_wsdl: Any) -> dict[str, Any]:
    return normalise_schema(schema_of(spyne_wsdl))


def test_spyne_wrappers_are_the_official_anonymous_types(spyne_schema: dict[str, Any]) -> None:
    extra = set(spyne_schema["complexTypes"]) - set(official_schema()["complexTypes"])
    assert extra == ANONYMOUS_WRAPPERS
    anonymous = {
        field[0]
        for struct in official_schema()["complexTypes"].values()
        for field in struct["fields"]
        if isinstance(field[1], dict)
    }
    assert anonymous == ANONYMOUS_WRAPPERS
    for name in ANONYMOUS_WRAPPERS:  # each is used only where the official type has it inline
        users = [(t, f[0]) for t, s in spyne_schema["complexTypes"].items()
                 for f in s["fields"] if f[1] == f"tns:{name}"]
        assert [u[1] for u in users] == [name], users


@pytest.mark.parametrize("name", sorted(official_schema()["complexTypes"]))
def test_spyne_complex_type_matches(spyne_schema: dict[str, Any], name: str) -> None:
    view = spyne_view(spyne_schema)
    official = without_nillable(official_schema())["complexTypes"][name]
    assert name in view["complexTypes"], f"Spyne has no type {name}"
    assert view["complexTypes"][name] == official


def test_spyne_simple_types_match(spyne_schema: dict[str, Any]) -> None:
    assert spyne_schema["simpleTypes"] == official_schema()["simpleTypes"]


@pytest.mark.parametrize("name", sorted(official_schema()["elements"]))
def test_spyne_has_every_official_global_element(spyne_schema: dict[str, Any], name: str) -> None:
    view, official = spyne_view(spyne_schema), without_nillable(official_schema())
    assert name in view["elements"], f"Spyne's schema has no element {name}"
    assert view["elements"][name] == official["elements"][name]
    assert expand(view, view["elements"][name]) == expand(official, official["elements"][name])


def test_spyne_schema_has_no_differences(spyne_schema: dict[str, Any]) -> None:
    assert spyne_differences(official_schema(), spyne_schema) == []
    assert spyne_schema["targetNamespace"] == NS


@pytest.mark.parametrize("mutate", MUTATIONS, ids=lambda f: f.__name__.strip("_"))
def test_spyne_comparison_detects_a_changed_field(spyne_schema: dict[str, Any],
                                                  mutate: Any) -> None:
    """The same comparison, against a mutated official schema, must complain."""
    schema = copy.deepcopy(schema_of(official_root()))
    changed_type = mutate(schema)
    problems = spyne_differences(normalise_schema(schema), spyne_schema)
    if mutate is _nillable:  # nillable is deliberately not compared with Spyne
        assert problems == []
    else:
        assert any(p.startswith(f"complexType {changed_type}:") for p in problems), problems


def test_spyne_operations_are_the_port_type(spyne_wsdl: Any) -> None:
    spyne_ops = normalise_wsdl(spyne_wsdl)
    (port_type,) = spyne_ops["portTypes"].values()
    assert sorted(port_type) == sorted(official_operations())
    messages = spyne_ops["messages"]
    for op, ((_, request), (_, response)) in port_type.items():
        # Spyne names its message parts after the element, the official file "parameters";
        # part names never travel in document/literal.
        assert [e for _, e in messages[type_name(request)]] == [f"tns:{op}"]
        assert [e for _, e in messages[type_name(response)]] == [f"tns:{op}Response"]


def _reachable_models() -> Iterator[tuple[str, str, Any]]:
    """(owner, field, type) for every field of every message and model of the service."""
    seen: set[Any] = set()
    pending: list[tuple[str, Any]] = []
    for name, method in ERSWSExternalClientService.public_methods.items():
        pending += [(name, method.in_message), (f"{name}Response", method.out_message)]
    while pending:
        owner, model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for field_name, kind in model.get_flat_type_info(model).items():
            yield owner, field_name, kind
            if issubclass(kind, ComplexModelBase):
                pending.append((kind.get_type_name(), kind))


def test_spyne_fields_are_unqualified() -> None:
    """elementFormDefault="unqualified": every child element travels without a namespace."""
    fields = list(_reachable_models())
    assert len(fields) > 150
    qualified = [(o, f) for o, f, kind in fields if kind.Attributes.sub_ns != ""]
    assert qualified == []
    nillable = [(o, f) for o, f, kind in fields if kind.Attributes.nillable]
    assert nillable == []  # never xsi:nil: an absent field is simply not sent


# --- what travels: the gateway's reader and writer against the official schema ------------


def _sample(kind: Any) -> Any:
    """A value for every field of `kind`, two for repeated ones, all the way down."""
    if issubclass(kind, ComplexModelBase):
        cls = getattr(kind, "__orig__", None) or kind
        return cls(**{name: _occurrences(t) for name, t in cls.get_flat_type_info(cls).items()})
    if issubclass(kind, EnumBase):
        return getattr(kind, kind.__values__[-1])
    if issubclass(kind, ByteArray):
        return [b"\x00\xffreceipt"]
    if issubclass(kind, Integer):
        return 7
    if issubclass(kind, Decimal):
        return decimal.Decimal("93.31")
    if issubclass(kind, DateTime):
        return datetime.datetime(2014, 4, 11, 18, 21, tzinfo=datetime.UTC)
    if issubclass(kind, Unicode):
        return "text ]]> & <b>"
    raise AssertionError(f"no sample value for {kind}")


def _occurrences(kind: Any) -> Any:
    return [_sample(kind), _sample(kind)] if kind.Attributes.max_occurs != 1 else _sample(kind)


def _assert_contract_xml(element: Any) -> None:
    schema = official_xml_schema()
    assert etree.QName(element).namespace == NS
    assert schema.validate(element), f"{schema.error_log}\n{etree.tostring(element).decode()}"
    for node in element.iterdescendants():
        assert etree.QName(node).namespace is None, node.tag
        assert dict(node.attrib) == {}, (node.tag, dict(node.attrib))


def _written(operation: str, answer: Any) -> Any:
    """The gateway's answer bytes for `answer`, parsed: the operation's response element."""
    method = ERSWSExternalClientService.public_methods[operation]
    data = b"".join(envelope.response(operation, return_type(method), answer))
    assert data.startswith(b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
                           b"<soap:Body><ns2:" + operation.encode() + b"Response ")
    root = etree.fromstring(data)
    (payload,) = root.find(f"{{{envelope.SOAP11_ENV}}}Body")
    return payload


@pytest.mark.parametrize("operation", official_operations())
def test_messages_read_and_written_as_the_official_schema(spyne_app: Any,
                                                          operation: str) -> None:
    """Each operation's request with every field set (twice where repeated), as Spyne writes
    it, is valid and reads back through the gateway's reader with no deviation. Each
    response, full and as bare as an error answer (required fields still there, never
    xsi:nil), written by the gateway, is valid against the official schema."""
    method = ERSWSExternalClientService.public_methods[operation]
    request = method.in_message(**{
        name: _occurrences(kind) for name, kind in method.in_message._type_info.items()
    })
    element = get_object_as_xml(request, method.in_message)
    _assert_contract_xml(element)
    notes: list[Deviation] = []
    arguments = Reader(notes).arguments(element, method.in_message, operation)
    assert notes == []
    assert len(arguments) == len(method.in_message._type_info)
    assert all(argument is not None for argument in arguments)

    returns = return_type(method)
    _assert_contract_xml(_written(operation, _sample(returns)))
    bare = _written(operation, {"resultCode": 91, "resultDescription": "UNSUPPORTED_OPERATION"})
    _assert_contract_xml(bare)
    (ret,) = bare
    assert [child.tag for child in ret][:2] == ["resultCode", "resultDescription"]
    assert all(child.text == "0" for child in ret[2:])  # only required numbers, at 0


def _models() -> list[type]:
    found, todo = [], [contract.Model]
    while todo:
        for model in todo.pop().__subclasses__():
            if getattr(model, "__orig__", None) is None and model not in found:
                found.append(model)
                todo.append(model)
    return found


@pytest.mark.parametrize("model", _models(), ids=lambda model: model.get_type_name())
def test_models_are_built_as_spyne_builds_them(model: type) -> None:
    """The contract's quick __init__ sets what Spyne's own sets: with no values, with some,
    and with a name that is not a field."""
    fields = list(model.get_flat_type_info(model))
    for given in ({}, {fields[0]: "x", fields[-1]: 7}, {"notAField": 1}):
        spyne_made = model.__new__(model)
        ComplexModelBase.__init__(spyne_made, **given)
        assert vars(model(**given)) == vars(spyne_made)

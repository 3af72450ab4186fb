"""The official contract as tests read it: the official WSDL (shipped in wsdl/) and the wire
samples (tests/data/samples), and the WSDL's schema normalised into plain data
(`normalise_schema`) so types compare field by field.
"""

import copy
from typing import Any

from lxml import etree

from tests.support import REPO
from tests.support.envelopes import NS

DATA = REPO / "tests" / "data"
OFFICIAL_WSDL = REPO / "wsdl" / "ERSWSExternalClientService.wsdl"  # the official file, as is
SAMPLES = DATA / "samples"  # SOAP requests shaped as the SEQR documentation shows them


def sample(name: str, **values: str) -> bytes:
    """A wire sample of tests/data/samples, byte for byte but for its placeholders."""
    data = (SAMPLES / name).read_bytes()
    for key, value in values.items():
        data = data.replace(key.encode(), value.encode())
    return data


XSD = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
PREFIXES = {XSD: "xs", NS: "tns"}


# The official file's anonymous inline types, which Spyne can only express as named types.
ANONYMOUS_WRAPPERS = {"invoiceRows", "accounts", "customerTokens"}


def x(tag: str) -> str:
    return f"{{{XSD}}}{tag}"


def w(tag: str) -> str:
    return f"{{{WSDL}}}{tag}"


def local(node: Any) -> str:
    return str(etree.QName(node).localname)


def qname(node: Any, value: str) -> str:
    """A QName-valued attribute with canonical prefixes (`xs:`, `tns:`), whatever the file's."""
    prefix, _, name = value.rpartition(":")
    uri = node.nsmap.get(prefix or None)
    assert uri in PREFIXES, f"{value!r}: namespace {uri!r} is neither XSD nor the service's"
    return f"{PREFIXES[uri]}:{name}"


def elements(node: Any) -> list[Any]:
    """Element children, skipping comments and annotations."""
    return [c for c in node if isinstance(c.tag, str) and c.tag != x("annotation")]


def only_attributes(node: Any, allowed: set[str]) -> None:
    unexpected = set(node.attrib) - allowed
    assert not unexpected, f"normaliser does not understand {unexpected} on {local(node)}"


def normalise_field(node: Any) -> tuple[Any, ...]:
    assert node.tag == x("element"), f"unsupported particle {local(node)} in a sequence"
    only_attributes(node, {"name", "type", "minOccurs", "maxOccurs", "nillable"})
    children = elements(node)
    if "type" in node.attrib:
        assert not children, f"element {node.get('name')} has both a type and inline content"
        kind: Any = qname(node, node.get("type"))
    else:
        assert len(children) == 1 and children[0].tag == x("complexType"), (
            f"element {node.get('name')} has neither a type nor one inline complexType"
        )
        kind = {"anonymous": normalise_complex(children[0])}
    max_occurs = node.get("maxOccurs", "1")
    return (
        node.get("name"),
        kind,
        int(node.get("minOccurs", "1")),
        max_occurs if max_occurs == "unbounded" else int(max_occurs),
        node.get("nillable", "false") in ("true", "1"),
    )


def normalise_sequence(node: Any) -> list[tuple[Any, ...]]:
    assert node.tag == x("sequence"), f"unsupported model group {local(node)}"
    only_attributes(node, set())
    return [normalise_field(child) for child in elements(node)]


def normalise_complex(node: Any) -> dict[str, Any]:
    """{"base": extension base or None, "fields": [(name, type, min, max, nillable), ...]}.

    `<xs:complexType/>` and `<xs:complexType><xs:sequence/></xs:complexType>` both mean
    "no children" and normalise alike (Spyne writes the first, the official file the second).
    """
    only_attributes(node, {"name"})
    children = elements(node)
    base, fields = None, []
    if children:
        assert len(children) == 1, f"complexType {node.get('name')}: more than one particle"
        content = children[0]
        if content.tag == x("complexContent"):
            only_attributes(content, set())
            (extension,) = elements(content)
            assert extension.tag == x("extension"), "only complexContent/extension is supported"
            only_attributes(extension, {"base"})
            base = qname(extension, extension.get("base"))
            groups = elements(extension)
            assert len(groups) <= 1
            fields = normalise_sequence(groups[0]) if groups else []
        else:
            fields = normalise_sequence(content)
    return {"base": base, "fields": fields}


def normalise_simple(node: Any) -> dict[str, Any]:
    only_attributes(node, {"name"})
    (restriction,) = elements(node)
    assert restriction.tag == x("restriction"), "only restrictions are supported"
    facets = elements(restriction)
    assert all(f.tag == x("enumeration") for f in facets), "only enumerations are supported"
    return {
        "base": qname(restriction, restriction.get("base")),
        "enumeration": [f.get("value") for f in facets],
    }


def normalise_schema(schema: Any) -> dict[str, Any]:
    """{"targetNamespace", "elementFormDefault", "elements", "complexTypes", "simpleTypes"}."""
    assert schema.tag == x("schema")
    result: dict[str, Any] = {
        "targetNamespace": schema.get("targetNamespace"),
        "elementFormDefault": schema.get("elementFormDefault", "unqualified"),
        "elements": {}, "complexTypes": {}, "simpleTypes": {},
    }
    for node in elements(schema):
        name = node.get("name")
        if node.tag == x("element"):
            only_attributes(node, {"name", "type"})
            result["elements"][name] = qname(node, node.get("type"))
        elif node.tag == x("complexType"):
            result["complexTypes"][name] = normalise_complex(node)
        elif node.tag == x("simpleType"):
            result["simpleTypes"][name] = normalise_simple(node)
        else:
            raise AssertionError(f"unsupported top-level schema component {local(node)}")
        assert sum(name in result[k] for k in ("elements", "complexTypes", "simpleTypes")) <= 2
    return result


def schema_of(wsdl_root: Any) -> Any:
    schemas = wsdl_root.findall(f"{w('types')}/{x('schema')}")
    assert len(schemas) == 1, "the contract has exactly one embedded schema"
    return schemas[0]


def normalise_wsdl(root: Any) -> dict[str, Any]:
    """The whole WSDL as data; soap:address locations are under "addresses", apart."""
    soap_ns = {"soap": WSDL_SOAP}
    result: dict[str, Any] = {
        "name": root.get("name"),
        "targetNamespace": root.get("targetNamespace"),
        "schema": normalise_schema(schema_of(root)),
        "messages": {
            m.get("name"): [
                (p.get("name"), qname(p, p.get("element"))) for p in m.findall(w("part"))
            ]
            for m in root.findall(w("message"))
        },
        "portTypes": {}, "bindings": {}, "services": {}, "addresses": [],
    }
    for port_type in root.findall(w("portType")):
        result["portTypes"][port_type.get("name")] = {
            op.get("name"): tuple(
                (io.get("name"), qname(io, io.get("message")))
                for io in (op.find(w("input")), op.find(w("output")))
            )
            for op in port_type.findall(w("operation"))
        }
    for binding in root.findall(w("binding")):
        soap_binding = binding.find("soap:binding", soap_ns)
        result["bindings"][binding.get("name")] = {
            "type": qname(binding, binding.get("type")),
            "style": soap_binding.get("style"),
            "transport": soap_binding.get("transport"),
            "operations": {
                op.get("name"): {
                    "soapAction": op.find("soap:operation", soap_ns).get("soapAction"),
                    "style": op.find("soap:operation", soap_ns).get("style"),
                    "input": (op.find(w("input")).get("name"),
                              op.find(f"{w('input')}/soap:body", soap_ns).get("use")),
                    "output": (op.find(w("output")).get("name"),
                               op.find(f"{w('output')}/soap:body", soap_ns).get("use")),
                }
                for op in binding.findall(w("operation"))
            },
        }
    for service in root.findall(w("service")):
        ports = {}
        for port in service.findall(w("port")):
            ports[port.get("name")] = qname(port, port.get("binding"))
            result["addresses"].append(port.find("soap:address", soap_ns).get("location"))
        result["services"][service.get("name")] = ports
    return result


_official_cache: dict[str, Any] = {}


def official_root() -> Any:
    return etree.parse(str(OFFICIAL_WSDL)).getroot()


def official_schema() -> dict[str, Any]:
    """The official schema, normalised (computed once)."""
    if "schema" not in _official_cache:
        _official_cache["schema"] = normalise_schema(schema_of(official_root()))
    return _official_cache["schema"]


def official_xml_schema() -> etree.XMLSchema:
    """The official WSDL's xs:schema, compiled by lxml: what every response must satisfy."""
    if "xmlschema" not in _official_cache:
        _official_cache["xmlschema"] = etree.XMLSchema(copy.deepcopy(schema_of(official_root())))
    return _official_cache["xmlschema"]


def official_operations() -> list[str]:
    """The operations of the official port type, in file order."""
    (port_type,) = official_root().findall(w("portType"))
    return [op.get("name") for op in port_type.findall(w("operation"))]


def type_name(kind: str) -> str:
    assert kind.startswith("tns:"), kind
    return kind[4:]


def all_fields(schema: dict[str, Any], name: str) -> list[tuple[Any, ...]]:
    """The elements of a complexType in wire order: the extension base's first."""
    struct = schema["complexTypes"][name]
    inherited = all_fields(schema, type_name(struct["base"])) if struct["base"] else []
    return inherited + struct["fields"]

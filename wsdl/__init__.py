"""The contract: the official WSDL (served at ?wsdl) and an XSD per report document."""

import copy
import threading
from functools import cache
from importlib import resources
from typing import Any

from lxml import etree

WSDL_FILE = "ERSWSExternalClientService.wsdl"
NS_WSDL = "http://schemas.xmlsoap.org/wsdl/"
NS_WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
NS_XSD = "http://www.w3.org/2001/XMLSchema"
TARGET_NAMESPACE = "http://external.interfaces.ers.seamless.com/"
#: the SOAP binding of the port, as zeep names it
BINDING = f"{{{TARGET_NAMESPACE}}}ERSWSExternalClientServiceServiceSoapBinding"


def _read(name: str) -> bytes:
    return resources.files(__name__).joinpath(name).read_bytes()


def wsdl_path() -> str:
    """A file path of the shipped WSDL, for clients (zeep, suds) that load from disk."""
    return str(resources.files(__name__).joinpath(WSDL_FILE))


@cache
def wsdl_tree() -> Any:
    return etree.fromstring(_read(WSDL_FILE), etree.XMLParser(resolve_entities=False))


def served_wsdl(address: str) -> bytes:
    """The official WSDL with every soap:address pointing at `address`."""
    tree = copy.deepcopy(wsdl_tree())
    for node in tree.iter(f"{{{NS_WSDL_SOAP}}}address"):
        node.set("location", address)
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


_per_thread = threading.local()


def request_schema() -> etree.XMLSchema:
    """The WSDL's embedded schema, compiled: what every request body is validated against.

    One instance per thread: a schema keeps the error log of its last validation.
    """
    schema = getattr(_per_thread, "schema", None)
    if schema is None:
        schema_node = wsdl_tree().find(f"{{{NS_WSDL}}}types/{{{NS_XSD}}}schema")
        schema = _per_thread.schema = etree.XMLSchema(copy.deepcopy(schema_node))
    return schema


@cache
def report_schema(report_id: str) -> etree.XMLSchema:
    """The XSD of one report document, e.g. `report_schema("STD_RECON_003")`."""
    return etree.XMLSchema(etree.fromstring(_read(f"reports/{report_id}.xsd")))

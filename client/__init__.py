"""The reference client: zeep, built from the official contract shipped in `wsdl/`.

Only the endpoint address differs between our gateway and a real SEQR service.
"""

from typing import Any

import zeep
from zeep.transports import Transport

from wsdl import wsdl_path

BINDING = "{http://external.interfaces.ers.seamless.com/}ERSWSExternalClientServiceServiceSoapBinding"


def service(endpoint: str, *, wsdl: str | None = None, timeout: float = 30.0) -> Any:
    """A zeep service proxy for `endpoint`, from the official WSDL (or the `wsdl` given)."""
    client = zeep.Client(wsdl or wsdl_path(), transport=Transport(timeout=timeout))
    return client.create_service(BINDING, endpoint)

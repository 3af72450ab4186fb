"""A canned WSGI app: the ceiling of the gateway's HTTP stack, for `bench_soap.py`.

It reads the request body and answers every POST with the same fixed SOAP response (the
bytes the gateway sends for `benchmarkingNop`), so what it measures is gunicorn, the sync
worker, the TCP connection per request and the client: everything but the gateway's own
work. Run it with the same gunicorn settings the gateway uses (see `bench_soap.py`):

    python -m gunicorn --workers 2 --bind 127.0.0.1:8081 benchmarks.canned:app
"""

from collections.abc import Callable, Iterable
from typing import Any

RESPONSE = (
    b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    b'<ns2:benchmarkingNopResponse xmlns:ns2="http://external.interfaces.ers.seamless.com/">'
    b"<return><resultCode>0</resultCode><resultDescription>SUCCESS</resultDescription>"
    b"</return></ns2:benchmarkingNopResponse></soap:Body></soap:Envelope>"
)
HEADERS = [("Content-Type", "text/xml; charset=UTF-8"), ("Content-Length", str(len(RESPONSE)))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("REQUEST_METHOD") != "POST":
        start_response("405 Method Not Allowed", [("Content-Type", "text/plain")])
        return [b"POST only\n"]
    length = environ.get("CONTENT_LENGTH") or ""
    if length.isdigit():
        environ["wsgi.input"].read(int(length))
    start_response("200 OK", HEADERS)
    return [RESPONSE]

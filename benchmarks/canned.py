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
    b"<?xml version='1.0' encoding='UTF-8'?>\n"
    b'<soap11env:Envelope xmlns:soap11env="http://schemas.xmlsoap.org/soap/envelope/"'
    b' xmlns:tns="http://external.interfaces.ers.seamless.com/"><soap11env:Body>'
    b"<tns:benchmarkingNopResponse><return><resultCode>0</resultCode>"
    b"<resultDescription>SUCCESS</resultDescription></return></tns:benchmarkingNopResponse>"
    b"</soap11env:Body></soap11env:Envelope>"
)
HEADERS = [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(RESPONSE)))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("REQUEST_METHOD") != "POST":
        start_response("405 Method Not Allowed", [("Content-Type", "text/plain")])
        return [b"POST only\n"]
    length = environ.get("CONTENT_LENGTH") or ""
    if length.isdigit():
        environ["wsgi.input"].read(int(length))
    start_response("200 OK", HEADERS)
    return [RESPONSE]

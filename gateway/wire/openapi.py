"""The admin API's OpenAPI 3.1 document, served at GET /admin/openapi.json."""

from typing import Any

from gateway.control import fixtures
from gateway.control.faults import EFFECTS
from storage.models import Invoice


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def _components(value: Any) -> Any:
    """The fixture's JSON Schema with its `#/$defs/x` references as OpenAPI components."""
    if isinstance(value, dict):
        return {key: ("#/components/schemas/Fixture" + item.rsplit("/", 1)[1].capitalize()
                      if key == "$ref" else _components(item)) for key, item in value.items()}
    if isinstance(value, list):
        return [_components(item) for item in value]
    return value


def _fixture_schemas() -> dict[str, Any]:
    schema = _components(fixtures.SCHEMA)
    top = {k: v for k, v in schema.items() if k not in ("$schema", "$id", "$defs")}
    return {"Fixture": top, **{"Fixture" + name.capitalize(): item
                               for name, item in schema["$defs"].items()}}


_ERRORS = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "503": {"$ref": "#/components/responses/DatabaseAway"},
}
_STRING_OR_NULL = {"type": ["string", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}
_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 100000, "default": 100},
                "at most this many, the newest (listed oldest first)")
_JOURNAL_FILTERS = [
    _query("operation", {"type": "string"}, "SOAP operation, e.g. getPaymentStatus"),
    _query("terminal", {"type": "string"}, "terminalId of the calling terminal"),
    _query("principal", {"type": "string"}, "initiatorPrincipalId/id (reseller or terminal)"),
    _query("resultCode", {"type": "integer"}, "the answer's resultCode"),
    _query("since", {"type": "string", "format": "date-time"}, "arrived at or after (UTC)"),
    _query("after", {"type": "integer"}, "entries with a larger id only"),
    _query("injected", {"type": "boolean"}, "only answers a fault rule shaped (true) or not"),
]

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "SEQR emulator admin API",
        "version": "1",
        "description": (
            "The tester's control plane: the request journal, the outgoing calls, fault "
            "injection, the virtual clock, reset and seed, and state summaries. JSON in and "
            "out. When SEQR_ADMIN_TOKEN is set every call needs `Authorization: Bearer "
            "<token>`. Changes to fault rules, the clock and resets are answered once every "
            "gateway process on the database applies them."
        ),
    },
    "security": [{"bearer": []}, {}],
    "paths": {
        "/admin/openapi.json": {"get": {
            "summary": "This document", "operationId": "openapi",
            "responses": {"200": _json({"type": "object"})},
        }},
        "/admin/requests": {
            "get": {
                "summary": "The request journal: SOAP exchanges, oldest first",
                "operationId": "listRequests", "parameters": [*_JOURNAL_FILTERS, _LIMIT],
                "responses": {"200": _json({"type": "array", "items": _ref("JournalEntry")}),
                              **_ERRORS},
            },
            "delete": {
                "summary": "Empty the journal", "operationId": "clearRequests",
                "responses": {"200": _json(_ref("Deleted")), **_ERRORS},
            },
        },
        "/admin/requests/count": {"get": {
            "summary": "How many journal entries match (verify a call was made N times)",
            "operationId": "countRequests", "parameters": _JOURNAL_FILTERS,
            "responses": {"200": _json({"type": "object", "required": ["count"],
                                        "properties": {"count": {"type": "integer"}}}),
                          **_ERRORS},
        }},
        "/admin/notifications": {"get": {
            "summary": "The outgoing calls: every notificationUrl attempt, oldest first",
            "operationId": "listNotifications", "parameters": [_LIMIT],
            "responses": {"200": _json({"type": "array", "items": _ref("OutgoingCall")}),
                          **_ERRORS},
        }},
        "/admin/faults": {
            "get": {
                "summary": "The fault rules, with their counters", "operationId": "listFaults",
                "responses": {"200": _json({"type": "array", "items": _ref("FaultRule")}),
                              **_ERRORS},
            },
            "post": {
                "summary": "Add a fault rule", "operationId": "addFault",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("FaultRuleIn")}}},
                "responses": {"200": _json(_ref("FaultRule")), **_ERRORS},
            },
            "delete": {
                "summary": "Remove every fault rule", "operationId": "clearFaults",
                "responses": {"200": _json(_ref("Deleted")), **_ERRORS},
            },
        },
        "/admin/faults/{id}": {"delete": {
            "summary": "Remove one fault rule", "operationId": "removeFault",
            "parameters": [{"name": "id", "in": "path", "required": True,
                            "schema": {"type": "integer"}}],
            "responses": {"200": _json(_ref("Deleted")),
                          "404": {"$ref": "#/components/responses/NotFound"}, **_ERRORS},
        }},
        "/admin/clock": {
            "get": {
                "summary": "The emulator's clock", "operationId": "getClock",
                "responses": {"200": _json(_ref("Clock")), **_ERRORS},
            },
            "post": {
                "summary": "Freeze, set, advance, resume or reset the clock",
                "operationId": "setClock",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("ClockChange")}}},
                "responses": {"200": _json(_ref("Clock")), **_ERRORS},
            },
        },
        "/admin/reset": {"post": {
            "summary": "Empty the state: everything (also the journal, the fault rules and "
                       "the clock), or one shop's data",
            "operationId": "reset",
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"shop": {"type": "string"}}}}}},
            "responses": {"200": _json({"type": "object", "properties": {
                "reset": {"enum": ["everything", "shop"]}, "shop": _STRING_OR_NULL,
                "deleted": {"type": "object", "additionalProperties": {"type": "integer"}}}}),
                **_ERRORS},
        }},
        "/admin/seed": {"post": {
            "summary": "Load a fixture (YAML or JSON): shops, users, terminals, invoices",
            "operationId": "seed",
            "parameters": [_query("reset", {"type": "boolean"}, "reset everything first")],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": _ref("Fixture")},
                "application/yaml": {"schema": _ref("Fixture")}}},
            "responses": {"200": _json(_ref("Seeded")), **_ERRORS},
        }},
        "/admin/state": {"get": {
            "summary": "Shops, their users and terminals, open invoices, the control plane",
            "operationId": "state",
            "responses": {"200": _json(_ref("State")), **_ERRORS},
        }},
        "/admin/invoices": {"get": {
            "summary": "Invoices, oldest first", "operationId": "listInvoices",
            "parameters": [
                _query("shop", {"type": "string"}, "reseller id"),
                _query("terminal", {"type": "string"}, "terminalId"),
                _query("status", {"enum": list(Invoice.STATUSES)}, "status"),
                _LIMIT,
            ],
            "responses": {"200": _json({"type": "array", "items": _ref("Invoice")}), **_ERRORS},
        }},
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "responses": {
            "BadRequest": _json(_ref("Error"), "The request is not valid; `error` says why"),
            "Unauthorized": _json(_ref("Error"), "SEQR_ADMIN_TOKEN is set and not given"),
            "NotFound": _json(_ref("Error"), "No such object"),
            "DatabaseAway": _json(_ref("Error"), "The database cannot be reached"),
        },
        "schemas": {
            "Error": {"type": "object", "required": ["error"],
                      "properties": {"error": {"type": "string"}}},
            "Deleted": {"type": "object", "required": ["deleted"],
                        "properties": {"deleted": {"type": "integer"}}},
            "JournalEntry": {"type": "object", "properties": {
                "id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"},
                "operation": _STRING_OR_NULL, "path": {"type": "string"},
                "principal": {"type": "object", "properties": {
                    "type": _STRING_OR_NULL, "id": _STRING_OR_NULL, "userId": _STRING_OR_NULL}},
                "terminalId": _STRING_OR_NULL, "httpStatus": {"type": "integer",
                                                              "description": "0: dropped"},
                "resultCode": _INT_OR_NULL, "fault": _STRING_OR_NULL,
                "latencyMs": {"type": "number"},
                "injected": {**_STRING_OR_NULL, "description": "the fault rule that shaped "
                                                                "the answer"},
                "deviations": {"type": "array", "items": {"type": "object"},
                               "description": "where the request strayed from the contract"},
                "request": {"type": "string", "description": "passwords masked"},
                "response": {"type": "string"},
            }},
            "OutgoingCall": {"type": "object", "properties": {
                "id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"},
                "invoiceReference": {"type": "string"}, "url": {"type": "string"},
                "method": _STRING_OR_NULL, "body": _STRING_OR_NULL,
                "status": {**_INT_OR_NULL, "description": "HTTP status; null: no answer"},
                "error": _STRING_OR_NULL, "outcome": {"type": "string"},
                "durationMs": {"type": "integer"}, "notificationStatus": {"type": "string"},
            }},
            "FaultRuleIn": {
                "type": "object", "additionalProperties": False, "required": ["effect"],
                "properties": {
                    "operation": {"type": "string", "description": "match this operation"},
                    "principal": {"type": "string", "description": "match this principal id"},
                    "terminal": {"type": "string", "description": "match this terminalId"},
                    "nth": {"type": "integer", "minimum": 1,
                            "description": "only the Nth matching call"},
                    "every": {"type": "integer", "minimum": 1,
                              "description": "every Nth matching call"},
                    "times": {"type": "integer", "minimum": 1,
                              "description": "the next K matching calls"},
                    "probability": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                    "effect": {"enum": list(EFFECTS)},
                    "resultCode": {"type": "integer", "description": "effect result_code"},
                    "httpStatus": {"type": "integer", "minimum": 400, "maximum": 599,
                                   "description": "effect http_error"},
                    "delayMs": {"type": "integer", "minimum": 0, "maximum": 600000,
                                "description": "wait before answering (any effect)"},
                    "polls": {"type": "integer", "minimum": 1,
                              "description": "report_not_ready: for the next N polls"},
                    "seconds": {"type": "number", "exclusiveMinimum": 0,
                                "description": "report_not_ready: for T s after the first"},
                    "expiresIn": {"type": "number", "exclusiveMinimum": 0,
                                  "description": "the rule ends after this many seconds"},
                },
            },
            "FaultRule": {"type": "object", "properties": {
                "id": {"type": "integer"}, "operation": _STRING_OR_NULL,
                "principal": _STRING_OR_NULL, "terminal": _STRING_OR_NULL,
                "nth": _INT_OR_NULL, "every": _INT_OR_NULL, "times": _INT_OR_NULL,
                "probability": {"type": ["number", "null"]}, "effect": {"enum": list(EFFECTS)},
                "resultCode": _INT_OR_NULL, "httpStatus": _INT_OR_NULL,
                "delayMs": _INT_OR_NULL, "seconds": {"type": ["number", "null"]},
                "createdAt": {"type": "string", "format": "date-time"},
                "expiresAt": {"type": ["string", "null"], "format": "date-time"},
                "matched": {"type": "integer", "description": "calls that matched"},
                "fired": {"type": "integer", "description": "calls it hit"},
            }},
            "Clock": {"type": "object", "properties": {
                "now": {"type": "string", "format": "date-time"},
                "realNow": {"type": "string", "format": "date-time"},
                "frozen": {"type": "boolean"}, "offsetSeconds": {"type": "number"},
                "virtual": {"type": "boolean"},
            }},
            "ClockChange": {
                "type": "object", "required": ["action"], "additionalProperties": False,
                "properties": {
                    "action": {"enum": ["freeze", "set", "advance", "resume", "reset"]},
                    "seconds": {"type": "number", "description": "advance by this much"},
                    "at": {"type": "string", "format": "date-time", "description": "set"},
                },
            },
            **_fixture_schemas(),
            "Seeded": {"type": "object", "properties": {
                "shops": {"type": "array", "items": {"type": "string"}},
                "terminals": {"type": "array", "items": {"type": "string"}},
                "invoices": {"type": "array", "items": {"type": "object"}},
            }},
            "State": {"type": "object", "properties": {
                "shops": {"type": "array", "items": {"type": "object"}},
                "openInvoices": {"type": "integer"}, "journalEntries": {"type": "integer"},
                "faultRules": {"type": "integer"}, "clock": _ref("Clock"),
            }},
            "Invoice": {"type": "object", "properties": {
                "invoiceReference": {"type": "string"}, "shop": {"type": "string"},
                "terminalId": {"type": "string"}, "status": {"type": "string"},
                "version": {"type": "integer"}, "totalAmount": {"type": "object"},
                "paymentReference": _STRING_OR_NULL,
            }},
        },
    },
}

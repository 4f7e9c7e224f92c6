"""The admin API's OpenAPI 3.1 document, served at `/admin/openapi.json`.

Hand-written next to the handlers (`admin.py`) rather than generated: four read-only
endpoints do not justify a schema framework, and field names here are API (scripts
read them). `tests/routing/test_admin.py` checks that every documented endpoint
answers and that each answer carries the documented fields.
"""

from __future__ import annotations

from typing import Any

from agentctl import __version__


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required if required is not None else list(properties),
    }


INT = {"type": "integer"}
NUM = {"type": "number"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}
LANE_COUNTS = _obj({"priority": INT, "standard": INT, "batch": INT})
AMOUNTS = _obj({"requests": INT, "tokens": INT, "pico": INT})
NULLABLE_AMOUNTS = {"oneOf": [{"$ref": "#/components/schemas/Amounts"}, {"type": "null"}]}
OPT_INT = {"type": ["integer", "null"]}

SCHEMAS: dict[str, Any] = {
    "Error": _obj(
        {
            "error": _obj(
                {
                    "message": STR,
                    "type": STR,
                    "param": {"type": ["string", "null"]},
                    "code": STR,
                }
            )
        }
    ),
    "LaneCounts": LANE_COUNTS,
    "Amounts": AMOUNTS,
    "Health": _obj(
        {
            "status": {"type": "string", "enum": ["ok", "degraded"]},
            "version": STR,
            "inflight": INT,
            "queued": INT,
            "audit_pending": INT,
            "upstreams": _obj({"healthy": INT, "half-open": INT, "ejected": INT}),
        }
    ),
    "Pool": _obj(
        {
            "name": STR,
            "explicit": BOOL,
            "upstreams": {"type": "array", "items": STR},
            "queued": {"$ref": "#/components/schemas/LaneCounts"},
            "max_attempts": INT,
            "fallback_on": {
                "type": "array",
                "items": {"type": "string", "enum": ["connect", "timeout", "5xx", "429"]},
            },
            "queue_timeout": NUM,
            "max_queue": INT,
        }
    ),
    "Upstream": _obj(
        {
            "name": STR,
            "base_url": STR,
            "api": {"type": "string", "enum": ["openai", "anthropic"]},
            "lanes": {"type": "array", "items": STR},
            "weight": INT,
            "max_concurrency": OPT_INT,
            "lane_ceilings": _obj({"priority": OPT_INT, "standard": OPT_INT, "batch": OPT_INT}),
            "in_flight": _obj({"priority": INT, "standard": INT, "batch": INT, "total": INT}),
            "health": _obj(
                {
                    "state": {"type": "string", "enum": ["healthy", "half-open", "ejected"]},
                    "consecutive_failures": INT,
                    "ejections": INT,
                    "ejected_for_s": NUM,
                    "probing": BOOL,
                }
            ),
            "requests": INT,
            "failures": INT,
        }
    ),
    "Upstreams": _obj(
        {
            "pools": {"type": "array", "items": {"$ref": "#/components/schemas/Pool"}},
            "upstreams": {"type": "array", "items": {"$ref": "#/components/schemas/Upstream"}},
            "lanes": {"type": "array", "items": STR},
        }
    ),
    "Budget": _obj(
        {
            "budget": STR,
            "subject": STR,
            "window_start": NUM,
            "window_end": NUM,
            "enforced": BOOL,
            "limits": _obj({"requests": OPT_INT, "tokens": OPT_INT, "pico": OPT_INT}),
            "used": NULLABLE_AMOUNTS,
            "settled": NULLABLE_AMOUNTS,
        }
    ),
    "Agent": _obj(
        {
            "agent": STR,
            "registered": BOOL,
            "status": STR,
            "owner": STR,
            "purpose": STR,
            "policy_version": STR,
            "lane": {"type": "string", "enum": ["priority", "standard", "batch"]},
            "trust": _obj({"enabled": BOOL, "tier": {"type": ["string", "null"]}}),
            "budgets": {"type": "array", "items": {"$ref": "#/components/schemas/Budget"}},
        }
    ),
}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _get(summary: str, ref: str, *, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": _json(ref)},
        "401": {"description": "Admin token missing or wrong", "content": _json("Error")},
        "403": {"description": "Not a loopback client", "content": _json("Error")},
    }
    responses.update(extra or {})
    return {"get": {"summary": summary, "operationId": ref.lower(), "responses": responses}}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "agentctl admin API",
        "version": __version__,
        "description": "Live state of one gateway process. Loopback clients only unless "
        "admin.allow_remote is on; `Authorization: Bearer <AGENTCTL_ADMIN_TOKEN>` when an "
        "admin token is configured.",
    },
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{"adminToken": []}, {}],
    "paths": {
        "/admin/health": _get("Gateway liveness, in-flight and queued requests", "Health"),
        "/admin/upstreams": _get(
            "Pools, upstream health, in-flight and queue depth per lane", "Upstreams"
        ),
        "/admin/agents/{name}": {
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": STR},
                {
                    "name": "owner",
                    "in": "query",
                    "description": "Owner of a declared (unregistered) agent (default: the "
                    "one it last declared to this gateway)",
                    "schema": STR,
                },
                {
                    "name": "purpose",
                    "in": "query",
                    "description": "Purpose of a declared (unregistered) agent (default: "
                    "the one it last declared to this gateway)",
                    "schema": STR,
                },
            ],
            **_get(
                "Live trust tier, lane and budget counters of one agent",
                "Agent",
                extra={"404": {"description": "Unknown agent", "content": _json("Error")}},
            ),
        },
        "/admin/openapi.json": {
            "get": {
                "summary": "This document",
                "operationId": "openapi",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1 document",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    },
}

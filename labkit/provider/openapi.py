"""The provider's API as an OpenAPI 3.0 document, written by hand.

The endpoints are plain Starlette functions that parse their own input (the
polling routes build bytes, not models), so no framework can describe them;
this document does, for readers and for the schema-driven fuzz run
(``tests/fuzz``). ``callback_url_pattern`` narrows the
subscription URL a generator produces (IP literals need no DNS lookup).
"""

from __future__ import annotations

from typing import Any

from labkit.provider.publishing import BATCH_MAX_EVENTS

ERROR = {"$ref": "#/components/schemas/Error"}

# One published event: the body of POST /events and each item of POST /events/batch, as one component that
# both reference, so the single and the batched request cannot drift apart.
PUBLISHED_EVENT = {"$ref": "#/components/schemas/PublishedEvent"}


def _resp(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {"application/json": {"schema": schema}}
    return out


def _errors(*codes: int) -> dict[str, Any]:
    words = {
        400: "bad request",
        401: "missing or invalid API key",
        404: "not found",
        409: "conflict",
        413: "body too large",
        415: "not JSON",
        422: "invalid field",
        429: "rate limited (Retry-After)",
    }
    return {str(c): _resp(words[c], ERROR) for c in codes}


def _components() -> dict[str, Any]:
    return {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]},
            "Event": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "type": {"type": "string"},
                    "created_ns": {"type": "integer"},
                    "payload": {"type": "object"},
                },
                "required": ["id", "type", "created_ns"],
            },
            "PublishedEvent": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "minLength": 1, "maxLength": 100},
                    "payload": {
                        "type": "object",
                        "description": "stored and delivered byte for byte; a number beyond a double's"
                        " range or an unpaired surrogate escape is a 422 naming the field",
                    },
                    "consumer": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 100,
                        "description": "the one consumer the event is for (audience)",
                    },
                },
                "required": ["type", "payload"],
                "additionalProperties": False,
            },
            "Subscription": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "url": {"type": "string"},
                    "event_types": {"type": "array", "items": {"type": "string"}},
                    "status": {"type": "string"},
                    "created_ns": {"type": "integer"},
                    "disabled_reason": {"type": "string", "nullable": True},
                    "disabled_ns": {
                        "type": "integer",
                        "nullable": True,
                        "description": "when it was disabled (410 or the disable policy)",
                    },
                    "previous_secret_valid_until_ns": {"type": "integer", "nullable": True},
                    "secret": {"type": "string", "description": "only in the create and rotate responses"},
                },
                "required": ["id", "url", "event_types", "status", "created_ns"],
            },
        },
    }


def _batch_path(common: dict[str, Any]) -> dict[str, Any]:
    """POST /events/batch."""
    return {
        "/events/batch": {
            "post": {
                "summary": "Publish many events in one transaction (each as POST /events would; all or none)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "events": {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": BATCH_MAX_EVENTS,
                                        "items": PUBLISHED_EVENT,
                                    }
                                },
                                "required": ["events"],
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                "responses": {
                    "201": _resp(
                        "published, ids in the batch's order",
                        {
                            "type": "object",
                            "properties": {"ids": {"type": "array", "items": {"type": "integer"}}, "created_ns": {"type": "integer"}},
                        },
                    ),
                    **_errors(400, 413, 415, 422),
                    **common,
                },
            }
        },
    }


def _feed_paths(common: dict[str, Any], max_wait_s: float, page_limit_max: int) -> dict[str, Any]:
    """GET and POST /events, and one event."""
    return {
        "/events": {
            "get": {
                "summary": "The cursor feed (ETag, long poll)",
                "parameters": [
                    {"name": "after", "in": "query", "schema": {"type": "string", "maxLength": 32}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": page_limit_max}},
                    {"name": "wait", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": max_wait_s}},
                    {"name": "types", "in": "query", "schema": {"type": "string", "maxLength": 512}},
                    {"name": "If-None-Match", "in": "header", "schema": {"type": "string", "maxLength": 64}},
                ],
                "responses": {
                    "200": _resp(
                        "a page",
                        {
                            "type": "object",
                            "properties": {
                                "data": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                                "next": {"type": "string"},
                                "has_more": {"type": "boolean"},
                            },
                        },
                    ),
                    "304": _resp("nothing new"),
                    **_errors(400),
                    **common,
                },
            },
            "post": {
                "summary": "Publish an event",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": PUBLISHED_EVENT}},
                },
                "responses": {
                    "201": _resp("published", {"$ref": "#/components/schemas/Event"}),
                    **_errors(400, 413, 415, 422),
                    **common,
                },
            },
        },
        "/events/{event_id}": {
            "get": {
                "parameters": [{"name": "event_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 32}}],
                "responses": {"200": _resp("the event", {"$ref": "#/components/schemas/Event"}), **_errors(404), **common},
            }
        },
    }


def _subscription_paths(common: dict[str, Any], url: dict[str, Any]) -> dict[str, Any]:
    """Subscriptions: create, list, read, delete, replay, rotate the secret."""
    sub_id = {"name": "sub_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}
    subscription = {"$ref": "#/components/schemas/Subscription"}
    return {
        "/subscriptions": {
            "get": {"responses": {"200": _resp("every subscription"), **common}},
            "post": {
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "url": url,
                                    "event_types": {
                                        "type": "array",
                                        "maxItems": 100,
                                        "items": {"type": "string", "minLength": 1, "maxLength": 100},
                                    },
                                    "secret": {"type": "string"},
                                },
                                "required": ["url"],
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                "responses": {"201": _resp("created; the secret is shown once", subscription), **_errors(400, 413, 415, 422), **common},
            },
        },
        "/subscriptions/{sub_id}": {
            "get": {"parameters": [sub_id], "responses": {"200": _resp("one", subscription), **_errors(404), **common}},
            "delete": {"parameters": [sub_id], "responses": {"204": _resp("deleted"), **_errors(404), **common}},
        },
        "/subscriptions/{sub_id}/replay": {
            "post": {
                "parameters": [sub_id],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"since_ns": {"type": "integer", "minimum": 0}, "after": {"type": "string"}},
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                "responses": {"202": _resp("queued"), **_errors(400, 404, 409, 413, 415, 422), **common},
            }
        },
        "/subscriptions/{sub_id}/rotate-secret": {
            "post": {
                "summary": "A new secret (shown once); the old one keeps signing for overlap_s",
                "parameters": [sub_id],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "secret": {"type": "string"},
                                    "overlap_s": {"type": "number", "minimum": 0, "maximum": 604800},
                                },
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                "responses": {"200": _resp("rotated", subscription), **_errors(400, 404, 413, 415, 422), **common},
            }
        },
    }


def provider_openapi(*, max_wait_s: float = 30.0, page_limit_max: int = 1000, callback_url_pattern: str | None = None) -> dict[str, Any]:
    """The document; the arguments match the provider's settings so limits are described truly."""
    url: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 2048}
    if callback_url_pattern:
        url["pattern"] = callback_url_pattern
    common = _errors(401, 429)
    return {
        "openapi": "3.0.3",
        "info": {"title": "labkit provider", "version": "1"},
        "components": _components(),
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": {"security": [], "responses": {"200": _resp("alive")}}},
            **_feed_paths(common, max_wait_s, page_limit_max),
            **_batch_path(common),
            **_subscription_paths(common, url),
            "/stats": {"get": {"responses": {"200": _resp("counters"), **common}}},
        },
    }

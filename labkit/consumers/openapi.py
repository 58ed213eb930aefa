"""The webhook receiver's API as an OpenAPI 3.0 document, for readers and the fuzz run.

The receiver reads the raw body itself (it must verify the exact bytes), so
FastAPI cannot describe it; this document does: the Standard Webhooks headers
and the message shape the provider sends.
"""

from __future__ import annotations

from typing import Any


def receiver_openapi() -> dict[str, Any]:
    headers = [
        {"name": "webhook-id", "in": "header", "required": True, "schema": {"type": "string", "maxLength": 300}},
        {"name": "webhook-timestamp", "in": "header", "required": True, "schema": {"type": "string", "maxLength": 32}},
        {"name": "webhook-signature", "in": "header", "required": True, "schema": {"type": "string", "maxLength": 1024}},
    ]
    event = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "type": {"type": "string"},
            "created_ns": {"type": "integer"},
            "payload": {"type": "object"},
        },
    }
    message = {
        "type": "object",
        "properties": {
            "type": {"type": "string"},
            "timestamp": {"type": "string"},
            "data": {"oneOf": [event, {"type": "object", "properties": {"events": {"type": "array", "items": event}}}]},
        },
    }
    answers = {
        "200": {"description": "a repeat of a processed message: acknowledged, not processed again"},
        "204": {"description": "verified, processed"},
        "400": {"description": "malformed message"},
        "401": {"description": "signature missing, wrong or stale"},
        "413": {"description": "body too large"},
    }
    body = {"required": True, "content": {"application/json": {"schema": message}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "labkit receiver", "version": "1"},
        "paths": {
            "/webhook": {"post": {"parameters": headers, "requestBody": body, "responses": answers}},
            "/webhook/{subscriber}": {
                "post": {
                    "parameters": [
                        {"name": "subscriber", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 300}},
                        *headers,
                    ],
                    "requestBody": body,
                    "responses": answers,
                }
            },
            "/healthz": {"get": {"responses": {"200": {"description": "alive"}}}},
            "/stats": {"get": {"responses": {"200": {"description": "counters"}}}},
        },
    }

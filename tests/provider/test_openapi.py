"""The provider's OpenAPI document: one published-event schema, referenced by the single and the batched publish."""

from __future__ import annotations

from typing import Any

from labkit.provider.openapi import provider_openapi


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if "$ref" in node else [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_single_and_batch_publish_reference_one_event_schema() -> None:
    doc = provider_openapi()
    single = doc["paths"]["/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    batch = doc["paths"]["/events/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert single == batch["properties"]["events"]["items"] == {"$ref": "#/components/schemas/PublishedEvent"}
    published = doc["components"]["schemas"]["PublishedEvent"]
    assert published["required"] == ["type", "payload"] and published["additionalProperties"] is False
    assert set(published["properties"]) == {"type", "payload", "consumer"}


def test_every_reference_resolves() -> None:
    doc = provider_openapi()
    refs = _refs(doc)
    assert refs
    for ref in refs:
        prefix, _, name = ref.rpartition("/")
        assert prefix == "#/components/schemas" and name in doc["components"]["schemas"], ref

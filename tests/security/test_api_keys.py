"""API keys on the polling API, each with its own rate limit, against a real provider process."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers.security import FREE_KEY, KEY_A, KEY_B, Lab, auth


@pytest.mark.parametrize(
    "headers",
    [{}, auth("lk_not_a_key"), {"authorization": f"Basic {KEY_A}"}, {"authorization": "Bearer"}, {"authorization": f"Bearer {KEY_A}x"}],
    ids=["none", "unknown", "basic-scheme", "empty-bearer", "key-prefix"],
)
def test_requests_without_a_valid_key_are_401_and_change_nothing(lab: Lab, client: httpx.Client, headers: dict[str, str]) -> None:
    before = lab.published()
    for method, path, body in (
        ("GET", "/events", None),
        ("POST", "/events", {"type": "t", "payload": {}}),
        ("POST", "/subscriptions", {"url": f"{lab.receiver.url}/webhook/x"}),
        ("GET", "/stats", None),
    ):
        r = client.request(method, f"{lab.provider.url}{path}", json=body, headers=headers)
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.headers["www-authenticate"] == "Bearer"
        assert KEY_A not in r.text
    assert lab.published() == before
    subs = client.get(f"{lab.provider.url}/subscriptions", headers=auth(FREE_KEY)).json()["data"]
    assert not [s for s in subs if s["url"].endswith("/webhook/x")]


def test_each_key_has_its_own_rate_limit(lab: Lab, client: httpx.Client) -> None:
    """KEY_A is spent (1/s, burst 2) while KEY_B, with its own bucket, is still served."""
    statuses = []
    for _ in range(20):
        r = client.get(f"{lab.provider.url}/events", headers=auth(KEY_A))
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert float(r.headers["retry-after"]) >= 1
            break
    assert statuses[-1] == 429, statuses
    assert client.get(f"{lab.provider.url}/events", headers=auth(KEY_B)).status_code == 200


def test_a_throttled_publish_publishes_nothing(lab: Lab, client: httpx.Client) -> None:
    before = lab.published()
    accepted = 0
    for i in range(20):
        r = client.post(f"{lab.provider.url}/events", json={"type": "t", "payload": {"i": i}}, headers=auth(KEY_B))
        if r.status_code == 429:
            break
        assert r.status_code == 201
        accepted += 1
    assert r.status_code == 429
    assert lab.published() == before + accepted


def test_a_key_given_its_own_limit_is_not_throttled(lab: Lab, client: httpx.Client) -> None:
    """FREE_KEY has a per-key override of 0 (unlimited) while the default is 1/s."""
    codes = {client.get(f"{lab.provider.url}/events?limit=1", headers=auth(FREE_KEY)).status_code for _ in range(15)}
    assert codes == {200}

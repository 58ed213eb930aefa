"""Forged, tampered, stale and replayed webhooks sent over HTTP to a real receiver process.

Each attack is rejected and leaves no record; a replay within the tolerance
window is caught by its webhook-id (acknowledged, processed once).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from labkit.wire.signing import new_secret
from tests.helpers.security import Lab, message, signed, unique_id


def post(client: httpx.Client, lab: Lab, body: bytes, headers: dict[str, str], subscriber: str = "sig") -> httpx.Response:
    return client.post(f"{lab.receiver.url}/webhook/{subscriber}", content=body, headers=headers)


def test_a_valid_webhook_is_processed_once_and_its_replay_is_caught(lab: Lab, client: httpx.Client) -> None:
    event = unique_id()
    body = message(event)
    headers = signed(lab.secret, f"msg_{event}", body)
    assert post(client, lab, body, headers).status_code == 204
    for _ in range(3):  # an attacker (or a retry) sends the captured request again, within the window
        again = post(client, lab, body, headers)
        assert again.status_code == 200 and again.json() == {"duplicate": True}
    assert lab.recorded("sig").count(event) == 1
    assert lab.messages().count(f"msg_{event}") == 1


def _forged(secret: str) -> tuple[bytes, dict[str, str]]:
    event = unique_id()
    body = message(event)
    return body, signed(new_secret(), f"msg_{event}", body)


def _tampered(secret: str) -> tuple[bytes, dict[str, str]]:
    event = unique_id()
    headers = signed(secret, f"msg_{event}", message(event))
    return message(event).replace(b'"payload":{}', b'"payload":{"amount":1000000}'), headers


def _other_id(secret: str) -> tuple[bytes, dict[str, str]]:
    event = unique_id()
    body = message(event)
    headers = signed(secret, f"msg_{event}", body)
    headers["webhook-id"] = f"msg_{event}_other"  # the id is signed too: a new id needs a new signature
    return body, headers


def _missing(name: str):  # type: ignore[no-untyped-def]
    def make(secret: str) -> tuple[bytes, dict[str, str]]:
        event = unique_id()
        body = message(event)
        headers = signed(secret, f"msg_{event}", body)
        del headers[name]
        return body, headers

    return make


def _header(name: str, value: str):  # type: ignore[no-untyped-def]
    def make(secret: str) -> tuple[bytes, dict[str, str]]:
        event = unique_id()
        body = message(event)
        headers = signed(secret, f"msg_{event}", body)
        headers[name] = value
        return body, headers

    return make


@pytest.mark.parametrize(
    "attack",
    [
        _forged,
        _tampered,
        _other_id,
        _missing("webhook-signature"),
        _missing("webhook-timestamp"),
        _missing("webhook-id"),
        _header("webhook-signature", "v1,!!!not-base64!!!"),
        _header("webhook-signature", "v2,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        _header("webhook-signature", ""),
        _header("webhook-timestamp", "yesterday"),
        _header("webhook-timestamp", "99999999999999999999999"),
    ],
    ids=[
        "forged",
        "tampered",
        "other-id",
        "no-signature",
        "no-timestamp",
        "no-id",
        "garbage-signature",
        "unknown-version",
        "empty-signature",
        "bad-timestamp",
        "huge-timestamp",
    ],
)
def test_bad_signatures_are_401_and_record_nothing(lab: Lab, client: httpx.Client, attack) -> None:  # type: ignore[no-untyped-def]
    body, headers = attack(lab.secret)
    before_messages = len(lab.messages())
    r = post(client, lab, body, headers)
    assert r.status_code == 401, r.text
    assert len(lab.messages()) == before_messages
    event = int(body.split(b'"id":')[1].split(b",")[0])
    assert event not in lab.recorded()


@pytest.mark.parametrize(
    "offset", [timedelta(minutes=-6), timedelta(minutes=6), timedelta(days=-365)], ids=["6-min-old", "6-min-ahead", "a-year-old"]
)
def test_timestamps_beyond_the_5_minute_tolerance_are_refused(lab: Lab, client: httpx.Client, offset: timedelta) -> None:
    event = unique_id()
    body = message(event)
    r = post(client, lab, body, signed(lab.secret, f"msg_{event}", body, datetime.now(tz=UTC) + offset))
    assert r.status_code == 401 and "timestamp" in r.text.lower()
    assert event not in lab.recorded()


def test_a_timestamp_within_the_tolerance_is_accepted(lab: Lab, client: httpx.Client) -> None:
    event = unique_id()
    body = message(event)
    r = post(client, lab, body, signed(lab.secret, f"msg_{event}", body, datetime.now(tz=UTC) - timedelta(minutes=4)))
    assert r.status_code == 204
    assert event in lab.recorded()

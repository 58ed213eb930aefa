"""A published payload reaches every consumer byte for byte: webhook, feed, single event, snapshot.

Each payload is sent as raw bytes (no client-side encoding) and must come back
as the same bytes inside every body the provider builds; a number beyond a
double's range or an unpaired surrogate is refused with a 422 naming the field.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest

from tests.helpers.provider import Receiver, provider_settings, running, until

pytestmark = pytest.mark.asyncio

JSON_HEADERS = {"content-type": "application/json"}

PAYLOADS = {
    "big integers": b'{"big":1180591620717411303424,"neg":-1180591620717411303424,"u64":18446744073709551616}',
    "floats as written": b'{"tenth":0.1,"one":1.0,"exp":1E+2,"tiny":5e-324,"long":3.141592653589793238462643383279}',
    "unicode raw and escaped": '{"é":"héllo 😀","esc":"\\u00e9\\ud83d\\ude00","nl":"a\\nb"}'.encode(),
    "duplicate keys kept": b'{"dup":1,"dup":2}',
    "key order and spacing": b'{ "z" : [ 1 , {"b":2,"a":1} ] ,\n  "a" : null }',
}


async def _publish_raw(client: httpx.AsyncClient, payload: bytes) -> dict:
    body = b'{"type":"fidelity","payload":' + payload + b"}"
    r = await client.post("/events", content=body, headers=JSON_HEADERS)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=list(PAYLOADS))
async def test_payload_bytes_survive_every_path(tmp_path: Path, receiver: Receiver, payload: bytes) -> None:
    async with running(provider_settings(tmp_path)) as (_, client):
        sub = (await client.post("/subscriptions", json={"url": receiver.url})).json()
        receiver.secret = sub["secret"]
        event = await _publish_raw(client, payload)
        spliced = b'"payload":' + payload + b"}"

        await until(lambda: len(receiver.ok()) == 1, what="the webhook")
        webhook = receiver.ok()[0]
        assert webhook.verified  # the signature covers the exact bytes sent
        assert webhook.raw.endswith(spliced + b"}")

        page = (await client.get("/events")).content
        assert spliced + b'],"next":"%d"' % event["id"] in page
        assert (await client.get(f"/events/{event['id']}")).content.endswith(spliced)
        assert (await client.get("/snapshot")).content.endswith(b'"state":' + payload + b"}")


async def test_payload_keys_in_the_envelope_order_do_not_matter(provider: tuple) -> None:
    _, client = provider
    payload = b'{"big":1180591620717411303424}'
    r = await client.post("/events", content=b'{"payload":' + payload + b',"type":"t"}', headers=JSON_HEADERS)
    assert r.status_code == 201, r.text
    assert (await client.get("/events/1")).content.endswith(b'"payload":' + payload + b"}")
    assert orjson.loads((await client.get("/events")).content)["data"][0]["type"] == "t"
    spaced = b' \n{ "type" :\t"t" ,\r\n "payload" : ' + payload + b" }\n"
    r = await client.post("/events", content=spaced, headers=JSON_HEADERS)
    assert r.status_code == 201, r.text
    assert (await client.get("/events/2")).content.endswith(b'"payload":' + payload + b"}")


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (b'{"a":[1,{"b":1e400}]}', "payload.a[1].b: number 1e400 is beyond the range of a double"),
        (b'{"n":-1' + b"0" * 400 + b"}", "payload.n: number -1000"),
        (b'{"s":"\\udc00"}', "payload.s: string has an unpaired UTF-16 surrogate"),
        (b'{"\\ud800x":1}', "payload: key has an unpaired UTF-16 surrogate"),
    ],
)
async def test_what_cannot_be_carried_is_422_naming_the_field(provider: tuple, payload: bytes, detail: str) -> None:
    app, client = provider
    r = await client.post("/events", content=b'{"type":"t","payload":' + payload + b"}", headers=JSON_HEADERS)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(detail)
    assert app.state.store.head() == 0

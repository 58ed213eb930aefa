"""WS /ws: the same stream as WebSocket messages, on a real provider process."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from labkit.servers.procs import Child
from tests.helpers.streams import AUTH, KEY, Lab


def _ws(url: str, headers: dict[str, str] | None = AUTH) -> ClientConnection:
    return connect(url.replace("http://", "ws://") + "/ws", additional_headers=headers, compression=None, open_timeout=10, proxy=None)


def _read(ws: ClientConnection, n: int) -> list[dict]:
    return [json.loads(ws.recv(timeout=10)) for _ in range(n)]


def test_every_event_in_order_with_id_type_time_payload(lab: Lab) -> None:
    p = lab.provider()
    ids = lab.publish(p.url, 12)
    with _ws(p.url) as ws:
        ws.send(json.dumps({"after": 0}))
        got = _read(ws, 12)
        live = lab.publish(p.url, 3)
        got += _read(ws, 3)
    assert [e["id"] for e in got] == ids + live
    assert all(e["type"] == "order.updated" and isinstance(e["created_ns"], int) for e in got)
    assert [e["payload"]["i"] for e in got] == list(range(12)) + list(range(3))


@pytest.mark.slow
def test_live_events_are_sent_by_the_hub_past_the_parked_writer(lab: Lab) -> None:
    p = lab.provider(heartbeat_s=60)
    lab.publish(p.url, 1)
    with _ws(p.url) as ws:
        ws.send(json.dumps({"after": 0}))
        got = _read(ws, 1)  # the backlog: the writer is live and parked once it is sent
        for _ in range(4):  # one at a time, each read before the next is published
            lab.publish(p.url, 1)
            got += _read(ws, 1)
    assert [e["id"] for e in got] == [1, 2, 3, 4, 5]
    stats = lab.stats(p.url)
    assert stats["stream_events_fanned_out"] == 4 and stats["stream_writes_pushed"] == 4


@pytest.mark.slow
def test_resume_after_and_types_filter(lab: Lab) -> None:
    p = lab.provider()
    lab.publish(p.url, 4, "a.one")
    lab.publish(p.url, 4, "b.two")
    with _ws(p.url) as ws:
        ws.send(json.dumps({"after": "5"}))
        assert [e["id"] for e in _read(ws, 3)] == [6, 7, 8]
    with _ws(p.url) as ws:
        ws.send(json.dumps({"after": 2, "types": ["a.one"]}))
        got = _read(ws, 2)
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)  # nothing of type b.two
    assert [(e["id"], e["type"]) for e in got] == [(3, "a.one"), (4, "a.one")]


@pytest.mark.slow
def test_a_valid_key_in_the_first_message_as_well_is_accepted(lab: Lab) -> None:
    p = lab.provider()
    lab.publish(p.url, 2)
    with _ws(p.url) as ws:
        ws.send(json.dumps({"after": 1, "api_key": KEY}))
        assert [e["id"] for e in _read(ws, 1)] == [2]


@pytest.mark.parametrize(
    "headers", [None, {"authorization": "Bearer wrong-key"}, {"authorization": "Basic bGFiOmtleQ=="}, {"authorization": "Bearer"}]
)
def test_without_a_valid_key_header_401_with_reason_before_the_handshake(refusing: tuple[Lab, Child], headers: dict | None) -> None:
    lab, p = refusing
    before = lab.stats(p.url)
    with pytest.raises(InvalidStatus) as exc:
        _ws(p.url, headers)  # refused before any WebSocket exists: no first message to send
    response = exc.value.response
    assert response.status_code == 401
    assert json.loads(response.body) == {"detail": "missing or invalid API key"}
    stats = lab.stats(p.url)
    assert stats["streams_total"] == before["streams_total"] and stats["unauthorized"] == before["unauthorized"] + 1


def test_a_wrong_key_in_the_first_message_closes_1008_with_reason(refusing: tuple[Lab, Child]) -> None:
    _, p = refusing
    with _ws(p.url) as ws:
        ws.send(json.dumps({"after": 0, "api_key": "nope-nope"}))
        with pytest.raises(ConnectionClosed) as exc:
            ws.recv(timeout=10)
    assert exc.value.rcvd.code == 1008 and exc.value.rcvd.reason == "missing or invalid API key"


def test_hostile_first_messages_close_1008_naming_the_problem(refusing: tuple[Lab, Child]) -> None:
    lab, p = refusing
    cases = [
        ("not json", "the first message must be JSON text"),
        ("[1, 2]", "the first message must be a JSON object"),
        (json.dumps({"after": "abc"}), "after: cursor must be"),
        (json.dumps({"after": -1}), "after: cursor must be"),
        (json.dumps({"after": 0, "types": "a"}), "types: must be a list"),
        (json.dumps({"after": 0, "nope": 1}), "nope: unknown field"),
    ]
    for text, reason in cases:
        with _ws(p.url) as ws:
            ws.send(text)
            with pytest.raises(ConnectionClosed) as exc:
                ws.recv(timeout=10)
        assert exc.value.rcvd.code == 1008
        assert exc.value.rcvd.reason.startswith(reason), text
    assert lab.stats(p.url)["streams_open"] == 0

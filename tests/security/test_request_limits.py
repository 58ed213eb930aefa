"""Oversized, over-deep, over-long and too-slow requests against real provider and receiver processes.

Bodies over the limit get 413, heads over the limit 431, JSON nested deeper
than the limit 400; a client that sends its head or body a byte at a time
(slowloris), or nothing at all, is answered 408 and cut off. Nothing any of
them sent is published or recorded.
"""

from __future__ import annotations

import contextlib
import select
import socket

import httpx
import pytest

from tests.helpers.security import (
    FREE_KEY,
    MAX_BODY,
    MAX_DEPTH,
    Lab,
    auth,
    exchange,
    idle,
    message,
    read_all,
    signed,
    trickle,
    unique_id,
)


def _target(lab: Lab, which: str) -> tuple[int, str, bytes]:
    """(port, request head without the final CRLF, a body) for the provider's publish or the receiver's webhook."""
    if which == "provider":
        body = b'{"type":"limits","payload":{}}'
        head = f"POST /events HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: Bearer {FREE_KEY}\r\ncontent-type: application/json\r\n"
        return lab.provider.port or 0, head, body
    event = unique_id()
    body = message(event)
    hdrs = signed(lab.secret, f"msg_{event}", body)
    head = "POST /webhook/limits HTTP/1.1\r\nhost: x\r\nconnection: close\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    return lab.receiver.port or 0, head, body


def _nothing_landed(lab: Lab, published_before: int) -> None:
    assert lab.published() == published_before
    assert lab.recorded("limits") == []


@pytest.mark.parametrize("which", ["provider", "receiver"])
def test_oversized_bodies_are_413(lab: Lab, client: httpx.Client, which: str) -> None:
    before = lab.published()
    port, head, _ = _target(lab, which)
    big = b'{"type":"limits","payload":{"pad":"' + b"x" * (MAX_BODY * 2) + b'"}}'
    said = exchange(port, f"{head}content-length: {len(big)}\r\n\r\n".encode() + big)
    assert said.startswith(b"HTTP/1.1 413"), said[:200]
    # No Content-Length: a chunked body that grows past the limit is cut off the same way.
    chunked = b"".join(b"%x\r\n%s\r\n" % (1024, b"x" * 1024) for _ in range(8)) + b"0\r\n\r\n"
    said = exchange(port, f"{head}transfer-encoding: chunked\r\n\r\n".encode() + chunked)
    assert said.startswith(b"HTTP/1.1 413"), said[:200]
    _nothing_landed(lab, before)


@pytest.mark.parametrize("which", ["provider", "receiver"])
@pytest.mark.parametrize("shape", ["one-huge-header", "many-headers", "huge-url"])
def test_oversized_heads_are_431(lab: Lab, which: str, shape: str) -> None:
    before = lab.published()
    port, head, body = _target(lab, which)
    if shape == "one-huge-header":
        head += "x-padding: " + "a" * 8000 + "\r\n"
    elif shape == "many-headers":
        head += "".join(f"x-h{i}: 1\r\n" for i in range(60))
    else:
        head = head.replace(" HTTP/1.1", "?q=" + "a" * 8000 + " HTTP/1.1", 1)
    said = exchange(port, f"{head}content-length: {len(body)}\r\n\r\n".encode() + body)
    assert said.startswith(b"HTTP/1.1 431"), said[:200]
    _nothing_landed(lab, before)


def test_json_nested_deeper_than_the_limit_is_400(lab: Lab, client: httpx.Client) -> None:
    before = lab.published()
    deep = '{"a":' * (MAX_DEPTH + 2) + "1" + "}" * (MAX_DEPTH + 2)
    r = client.post(
        f"{lab.provider.url}/events",
        content=f'{{"type":"limits","payload":{deep}}}',
        headers={**auth(FREE_KEY), "content-type": "application/json"},
    )
    assert r.status_code == 400 and "max_json_depth" in r.text
    arrays = "[" * 1500 + "]" * 1500  # deeper than orjson's own limit (1024) too: still a 400, not a 500
    r = client.post(
        f"{lab.provider.url}/events",
        content=f'{{"type":"limits","payload":{{"a":{arrays}}}}}',
        headers={**auth(FREE_KEY), "content-type": "application/json"},
    )
    assert r.status_code == 400
    assert lab.published() == before
    shallow = '{"a":' * (MAX_DEPTH - 2) + "1" + "}" * (MAX_DEPTH - 2)
    r = client.post(
        f"{lab.provider.url}/events",
        content=f'{{"type":"limits.ok","payload":{shallow}}}',
        headers={**auth(FREE_KEY), "content-type": "application/json"},
    )
    assert r.status_code == 201


@pytest.mark.parametrize("which", ["provider", "receiver"])
def test_a_head_sent_byte_by_byte_is_cut_off(lab: Lab, which: str) -> None:
    before = lab.published()
    port, head, body = _target(lab, which)
    request = f"{head}content-length: {len(body)}\r\n\r\n".encode() + body
    sent, said = trickle(port, request)
    assert said.startswith(b"HTTP/1.1 408"), said[:200]
    assert sent < len(request)  # the server gave up before the client finished
    _nothing_landed(lab, before)


@pytest.mark.parametrize("which", ["provider", "receiver"])
def test_a_body_sent_byte_by_byte_is_cut_off(lab: Lab, which: str) -> None:
    before = lab.published()
    port, head, body = _target(lab, which)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"{head}content-length: {len(body)}\r\n\r\n".encode())  # the whole head at once
        sent = 0
        for b in body:  # then the body, one byte at a time
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                break
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(bytes([b]))
            sent += 1
        said = read_all(sock)
    assert said.startswith(b"HTTP/1.1 408"), said[:200]
    assert sent < len(body)
    _nothing_landed(lab, before)


@pytest.mark.parametrize("which", ["provider", "receiver"])
def test_a_connection_that_sends_nothing_is_closed(lab: Lab, which: str) -> None:
    port = (lab.provider if which == "provider" else lab.receiver).port or 0
    assert idle(port).startswith(b"HTTP/1.1 408")


def test_servers_are_still_healthy_after_the_abuse(lab: Lab, client: httpx.Client) -> None:
    assert client.get(f"{lab.provider.url}/healthz").status_code == 200
    assert client.get(f"{lab.receiver.url}/healthz").status_code == 200
    assert "Traceback" not in lab.provider.log_path.read_text() + lab.receiver.log_path.read_text()

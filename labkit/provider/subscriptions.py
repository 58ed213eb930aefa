"""Webhook subscriptions: create, list, read, delete, rotate the secret, replay past events.

A secret leaves the provider only in the create and rotate responses; every
read returns ``Subscription.public()``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from labkit.provider.bodies import read_model
from labkit.provider.protocol import MAX_CURSOR, json_response, parse_cursor
from labkit.provider.routing import RouteSet
from labkit.provider.ssrf import check_callback_url
from labkit.provider.state import ProviderState, state_of
from labkit.provider.store import Subscription
from labkit.wire.signing import check_secret, new_secret

# Svix keeps an old secret valid for 24 h after a rotation.
DEFAULT_ROTATION_OVERLAP_S = 86_400.0


class SubscriptionIn(BaseModel):
    """POST /subscriptions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1, max_length=2048)
    event_types: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=list, max_length=100)
    secret: str | None = None
    consumer: str | None = Field(None, min_length=1, max_length=100, description="only this consumer's events (an account's endpoint)")


class RotateIn(BaseModel):
    """POST /subscriptions/{id}/rotate-secret: an optional new secret and how long the old one still signs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: str | None = None
    overlap_s: float = Field(DEFAULT_ROTATION_OVERLAP_S, ge=0, le=7 * 86_400, allow_inf_nan=False)


class ReplayIn(BaseModel):
    """POST /subscriptions/{id}/replay: exactly one of ``since_ns`` or ``after``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    since_ns: int | None = Field(None, ge=0, le=MAX_CURSOR)
    after: str | None = None


def secret_or_new(given: str | None) -> str:
    """The caller's whsec_ secret, checked (422 naming it), or a fresh one."""
    if given is None:
        return new_secret()
    try:
        return check_secret(given)
    except ValueError as exc:
        raise HTTPException(422, f"secret: {exc}") from None


def _sub_or_404(p: ProviderState, request: Request) -> Subscription:
    sub = p.store.subscription(request.path_params["sub_id"])
    if sub is None:
        raise HTTPException(404, "subscription not found")
    return sub


async def create_subscription(request: Request) -> Response:
    p = state_of(request)
    body: SubscriptionIn = await read_model(request, p.settings, SubscriptionIn)
    try:
        url = await asyncio.to_thread(check_callback_url, body.url, p.settings.allowed_callback_hosts)
    except ValueError as exc:
        raise HTTPException(422, f"url: {exc}") from None
    secret = secret_or_new(body.secret)
    sub = p.store.create_subscription(url, list(dict.fromkeys(body.event_types)), secret, body.consumer)
    p.dispatcher.wake()
    return json_response(201, {**sub.public(), "secret": sub.secret})


async def list_subscriptions(request: Request) -> Response:
    return json_response(200, {"data": [s.public() for s in state_of(request).store.subscriptions()]})


async def get_subscription(request: Request) -> Response:
    return json_response(200, _sub_or_404(state_of(request), request).public())


async def delete_subscription(request: Request) -> Response:
    p = state_of(request)
    if not p.store.delete_subscription(request.path_params["sub_id"]):
        raise HTTPException(404, "subscription not found")
    p.dispatcher.wake()
    return Response(status_code=204)


async def rotate_secret(request: Request) -> Response:
    """A new secret, shown once; the old one keeps signing (a second signature) for ``overlap_s``."""
    p = state_of(request)
    sub_id = _sub_or_404(p, request).id
    empty = request.headers.get("content-length") in (None, "0") and "transfer-encoding" not in request.headers
    body = RotateIn.model_validate({}) if empty else await read_model(request, p.settings, RotateIn)
    secret = secret_or_new(body.secret)
    sub = p.store.rotate_secret(sub_id, secret, int(body.overlap_s * 1e9))
    if sub is None:  # deleted in between
        raise HTTPException(404, "subscription not found")
    p.dispatcher.wake()
    return json_response(200, {**sub.public(), "secret": sub.secret})


async def replay(request: Request) -> Response:
    p = state_of(request)
    sub = _sub_or_404(p, request)
    body: ReplayIn = await read_model(request, p.settings, ReplayIn)
    if (body.since_ns is None) == (body.after is None):
        raise HTTPException(422, "give exactly one of since_ns or after")
    if sub.status != "active":
        raise HTTPException(409, f"subscription is {sub.status}; replay needs an active one")
    after = parse_cursor(body.after) if body.after is not None else None
    queued = p.store.replay(sub, since_ns=body.since_ns, after=after)
    p.dispatcher.wake()
    return json_response(202, {"queued": queued})


ROUTES = RouteSet(
    routes=(
        Route("/subscriptions", create_subscription, methods=["POST"]),
        Route("/subscriptions", list_subscriptions, methods=["GET"]),
        Route("/subscriptions/{sub_id}", get_subscription, methods=["GET"]),
        Route("/subscriptions/{sub_id}", delete_subscription, methods=["DELETE"]),
        Route("/subscriptions/{sub_id}/rotate-secret", rotate_secret, methods=["POST"]),
        Route("/subscriptions/{sub_id}/replay", replay, methods=["POST"]),
    )
)

"""Standard Webhooks secrets and signatures, through the ``standardwebhooks`` package.

The package does the HMAC and the verification; this module adds what it
leaves to us: generating ``whsec_`` secrets, signing with several secrets
during a rotation, and turning every malformed header into one error type.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

PREFIX = "whsec_"


class SignatureError(Exception):
    """A webhook failed verification; the message says why."""


def new_secret(nbytes: int = 32) -> str:
    """A fresh secret of 24-64 random bytes, shown as ``whsec_<base64>``."""
    if not 24 <= nbytes <= 64:
        raise ValueError("a webhook secret has 24 to 64 bytes")
    return PREFIX + base64.b64encode(_secrets.token_bytes(nbytes)).decode()


def check_secret(secret: str) -> str:
    """Raise ValueError unless ``secret`` is ``whsec_`` plus base64 of 24-64 bytes."""
    if not secret.startswith(PREFIX):
        raise ValueError("a webhook secret starts with 'whsec_'")
    try:
        raw = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from None
    if not 24 <= len(raw) <= 64:
        raise ValueError("a webhook secret holds 24 to 64 bytes")
    return secret


class Signer:
    """Signs messages with one or more secrets (two while a secret is rotated)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self._hooks = [Webhook(s) for s in secrets]

    def headers(self, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        ts = int(time.time()) if timestamp is None else timestamp
        when = datetime.fromtimestamp(ts, tz=UTC)
        text = body.decode()
        sigs = " ".join(h.sign(msg_id, when, text) for h in self._hooks)
        return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sigs}


class Verifier:
    """Verifies a raw body against any of the configured secrets."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self._hooks = [Webhook(s) for s in secrets]

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        wanted = {k: headers.get(k, "") for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
        missing = [k for k, v in wanted.items() if not v]
        if missing:
            raise SignatureError(f"missing header {missing[0]}")
        try:
            text = body.decode()
        except UnicodeDecodeError:
            raise SignatureError("body is not UTF-8") from None
        reason = "no matching signature"
        for hook in self._hooks:
            try:
                hook.verify(text, wanted, json_parse=False)
                return
            except WebhookVerificationError as exc:
                reason = str(exc).lower()
                if "timestamp" in reason or "header" in reason:
                    break  # the same for every secret
            except (ValueError, binascii.Error, TypeError, OverflowError):
                reason = "malformed webhook-signature header"
                break
        raise SignatureError(reason)


# -- consumer keys: one API key per consumer, derived from the provider's key secret ------------

CONSUMER_KEY_PREFIX = "ck."


def consumer_key(secret: str, consumer: str) -> str:
    """The API key of ``consumer`` under ``secret``: ``ck.<consumer>.<HMAC-SHA256 of the name, 128 bits>``.

    A load generator with thousands of users (each polling its own feed) can
    make each user's key from the secret alone, and the provider checks one
    without a table of every key (``consumer_of_key``).
    """
    mac = hmac.new(secret.encode(), consumer.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{CONSUMER_KEY_PREFIX}{consumer}.{mac}"


def consumer_of_key(secret: str, key: str) -> str | None:
    """The consumer a key made by ``consumer_key`` names, when its MAC is right; else None."""
    if not key.startswith(CONSUMER_KEY_PREFIX):
        return None
    consumer, _, mac = key[len(CONSUMER_KEY_PREFIX) :].rpartition(".")
    if not consumer or len(consumer) > 100:
        return None
    want = hmac.new(secret.encode(), consumer.encode(), hashlib.sha256).hexdigest()[:32]
    return consumer if hmac.compare_digest(want, mac) else None

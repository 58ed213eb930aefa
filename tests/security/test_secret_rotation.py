"""Secret rotation over HTTP: the provider signs with the old and the new secret during the overlap.

A real provider process delivers to a capture server (to look at the
signatures) and to a real receiver process that only knows the old secret:
during the overlap it still verifies, after it the receiver refuses with 401
and records nothing.
"""

from __future__ import annotations

import time

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from labkit.wire.signing import SignatureError, Verifier, check_secret, new_secret
from tests.helpers.security import FREE_KEY, CaptureServer, Lab, auth, wait_for

OVERLAP_S = 1.5


def publish(client: httpx.Client, lab: Lab, n: int) -> int:
    r = client.post(f"{lab.provider.url}/events", json={"type": "rotation.test", "payload": {"n": n}}, headers=auth(FREE_KEY))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def verifies(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        Webhook(secret).verify(body, headers)
        return True
    except WebhookVerificationError:
        return False


@pytest.mark.slow
def test_two_signatures_during_the_overlap_then_only_the_new_one(lab: Lab, client: httpx.Client) -> None:
    old = new_secret()
    with CaptureServer() as capture:
        r = client.post(
            f"{lab.provider.url}/subscriptions",
            json={"url": f"{capture.url}/hook", "secret": old, "event_types": ["rotation.test"]},
            headers=auth(FREE_KEY),
        )
        assert r.status_code == 201
        sub = r.json()["id"]
        # A real receiver that knows only the old secret.
        r = client.post(
            f"{lab.provider.url}/subscriptions",
            json={"url": f"{lab.receiver.url}/webhook/rotation", "secret": lab.secret, "event_types": ["rotation.test"]},
            headers=auth(FREE_KEY),
        )
        lab_sub = r.json()["id"]

        publish(client, lab, 1)
        assert wait_for(lambda: len(capture.received) >= 1)
        first = capture.received[0]
        assert len(first.headers["webhook-signature"].split()) == 1
        assert verifies(old, first.body, first.headers)

        rotated = client.post(
            f"{lab.provider.url}/subscriptions/{sub}/rotate-secret", json={"overlap_s": OVERLAP_S}, headers=auth(FREE_KEY)
        )
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["secret"]
        assert new != old and check_secret(new) == new
        until_ns = rotated.json()["previous_secret_valid_until_ns"]
        r = client.post(f"{lab.provider.url}/subscriptions/{lab_sub}/rotate-secret", json={"overlap_s": OVERLAP_S}, headers=auth(FREE_KEY))
        lab_until_ns = r.json()["previous_secret_valid_until_ns"]
        # The new secret is shown once: no read returns it (nor the old one).
        shown = client.get(f"{lab.provider.url}/subscriptions/{sub}", headers=auth(FREE_KEY)).json()
        listed = client.get(f"{lab.provider.url}/subscriptions", headers=auth(FREE_KEY)).text
        assert "secret" not in shown and new not in listed and old not in listed

        during = publish(client, lab, 2)
        assert wait_for(lambda: len(capture.received) >= 2)
        second = capture.received[1]
        assert len(second.headers["webhook-signature"].split()) == 2
        assert verifies(old, second.body, second.headers) and verifies(new, second.body, second.headers)
        Verifier([old]).verify(second.body, second.headers)  # a receiver not yet updated still accepts
        Verifier([new]).verify(second.body, second.headers)  # and one already updated too
        assert wait_for(lambda: during in lab.recorded("rotation"))

        def signature_rejections() -> int:
            stats = client.get(f"{lab.receiver.url}/stats").json()
            return sum(n for reason, n in stats["counters"]["rejected"].items() if "signature" in reason)

        while time.time_ns() <= max(until_ns, lab_until_ns):  # let the overlap end
            time.sleep(0.05)
        rejected_before = signature_rejections()
        after = publish(client, lab, 3)
        assert wait_for(lambda: len(capture.received) >= 3)
        third = capture.received[2]
        assert len(third.headers["webhook-signature"].split()) == 1
        assert verifies(new, third.body, third.headers) and not verifies(old, third.body, third.headers)
        try:
            Verifier([old]).verify(third.body, third.headers)
            raise AssertionError("the old secret still verifies after the overlap")
        except SignatureError:
            pass
        # The receiver that only knows the old secret now refuses (401) and records nothing.
        assert wait_for(lambda: signature_rejections() > rejected_before)
        assert after not in lab.recorded("rotation")
        client.delete(f"{lab.provider.url}/subscriptions/{sub}", headers=auth(FREE_KEY))
        client.delete(f"{lab.provider.url}/subscriptions/{lab_sub}", headers=auth(FREE_KEY))


def test_bad_rotations_are_4xx_and_change_nothing(lab: Lab, client: httpx.Client) -> None:
    old = new_secret()
    r = client.post(
        f"{lab.provider.url}/subscriptions", json={"url": f"{lab.receiver.url}/webhook/x", "secret": old}, headers=auth(FREE_KEY)
    )
    sub = r.json()["id"]
    base = f"{lab.provider.url}/subscriptions/{sub}/rotate-secret"
    assert client.post(f"{lab.provider.url}/subscriptions/sub_nope/rotate-secret", headers=auth(FREE_KEY)).status_code == 404
    assert client.post(base, json={"secret": "whsec_short"}, headers=auth(FREE_KEY)).status_code == 422
    assert client.post(base, json={"overlap_s": -1}, headers=auth(FREE_KEY)).status_code == 422
    assert client.post(base, json={"overlap_s": 1e12}, headers=auth(FREE_KEY)).status_code == 422
    assert client.post(base, json={"surprise": 1}, headers=auth(FREE_KEY)).status_code == 422
    assert client.post(base, content=b"{", headers={**auth(FREE_KEY), "content-type": "application/json"}).status_code == 400
    assert client.post(base).status_code == 401
    assert "previous_secret_valid_until_ns" not in client.get(f"{lab.provider.url}/subscriptions/{sub}", headers=auth(FREE_KEY)).json()
    # An empty body rotates with the default overlap; a given secret is taken as is.
    chosen = new_secret()
    r = client.post(base, json={"secret": chosen, "overlap_s": 0}, headers=auth(FREE_KEY))
    assert r.status_code == 200 and r.json()["secret"] == chosen
    r = client.post(base, headers=auth(FREE_KEY))
    assert r.status_code == 200 and r.json()["secret"] not in (old, chosen)
    client.delete(f"{lab.provider.url}/subscriptions/{sub}", headers=auth(FREE_KEY))

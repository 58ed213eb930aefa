# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5. Security: an open door, and a door with a key
#
# The article's fourth claim: *a webhook receiver is an open door that must use
# HTTPS and validate every request; APIs have keys, OAuth and fine-grained
# access.* Both halves are true, and both can be shown with real requests.
#
# * A **webhook receiver** is a public URL anyone can POST to. It must prove
#   that each request came from the provider (a signature), is not altered (the
#   signature covers the raw body), is fresh (a signed timestamp, 5 minutes of
#   tolerance) and is not a replay (the `webhook-id`, an idempotency key).
# * A **polling API** is called by the consumer, so the provider checks the
#   caller: API keys, and per-key rate limits (401, 429).
# * A **provider that sends webhooks** makes HTTP requests to URLs its customers
#   choose. Without a guard, a customer can aim it at the provider's own network
#   (server-side request forgery, SSRF).
#
# Everything below runs against real servers on 127.0.0.1, started for this
# notebook, and stopped at its end.

# %%
import base64
import hashlib
import hmac
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pandas as pd
from standardwebhooks.webhooks import Webhook

from labkit import notebook as nb
from labkit.config import ProviderSettings, ReceiverSettings
from labkit.servers.procs import ProcessGroup
from labkit.wire import signing

nb.setup()

# %% tags=["parameters"]
# Papermill parameters (papermill -p NAME VALUE). Quick mode is the environment variable LABKIT_QUICK=1.
TLS_REQUESTS = nb.params(full=200, quick=30)  # deliveries timed per mode in the price of HTTPS

# %% [markdown]
# ## Signing a webhook (Standard Webhooks)
#
# The provider and each subscriber share a secret, shown once when the
# subscription is created: 24-64 random bytes written `whsec_<base64>`. Each
# webhook carries three headers: `webhook-id`, `webhook-timestamp` (unix
# seconds) and `webhook-signature`, which is `v1,` + base64 of
# HMAC-SHA256(secret, "id.timestamp.body"). Several signatures may sit in one
# header, separated by spaces, so a secret can be rotated without downtime.
# (The secret is never printed here: it is a credential.)

# %%
secret = signing.new_secret()
body = nb.webhook_message(1001)
headers = signing.Signer([secret]).headers("msg_1001", body)
print(body.decode())
headers

# %% [markdown]
# The signature is nothing more than an HMAC, which any language can compute:

# %%
key = base64.b64decode(secret.removeprefix("whsec_"))
signed_content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
by_hand = "v1," + base64.b64encode(hmac.new(key, signed_content, hashlib.sha256).digest()).decode()
print("computed by hand equals the header:", hmac.compare_digest(by_hand, headers["webhook-signature"]))

# %% [markdown]
# And an independent implementation, the `standardwebhooks` package (the
# reference library of the spec), accepts it. `verify` raises on any mismatch;
# here it returns the parsed payload:

# %%
Webhook(secret).verify(body.decode(), headers)

# %% [markdown]
# ## A real receiver under attack
#
# Start a receiver (the lab's verifying, de-duplicating webhook endpoint) and a
# provider, each in its own process on a free loopback port. `ProcessGroup`
# stops them both at the end (or when the kernel stops). Their settings files
# hold the secret and the API keys, so they live in a private temporary folder,
# never under results/.

# %%
work = Path(tempfile.mkdtemp(prefix="labkit-nb05-"))
servers = ProcessGroup(work)
receiver = servers.start_server("receiver", "receiver", ReceiverSettings(secrets=(secret,)).model_dump(mode="json"))
provider = servers.start_server(
    "provider",
    "provider",
    ProviderSettings(
        db_path=str(work / "provider.db"),
        api_keys=("reader-key-1", "reader-key-2", "admin-key-1"),
        rate_limit_per_s=2.0,  # each key: 2 requests a second ...
        rate_limit_burst=3,  # ... after a burst of 3
        key_rate_limits={"admin-key-1": (0.0, 1)},  # the admin key is not limited
        allowed_callback_hosts=("127.0.0.1",),  # the lab's own receiver lives on loopback
    ).model_dump(mode="json"),
)
print("receiver:", receiver.url, " provider:", provider.url)

# %% [markdown]
# Now send it requests over real HTTP: genuine ones, signed by labkit and by the
# independent package, and the attacks an open endpoint sees: a forgery (signed
# with a secret the attacker guessed), a tampered body (a genuine signature, a
# changed amount), no signature at all, a replay of a genuine request, a replay
# captured ten minutes ago, and a replay whose timestamp the attacker refreshed.

# %%
hook = httpx.Client(base_url=receiver.url, timeout=10)
second = nb.webhook_message(1002)
sent_at = datetime.now(UTC)
by_package = {
    "webhook-id": "msg_1002",
    "webhook-timestamp": str(int(sent_at.timestamp())),
    "webhook-signature": Webhook(secret).sign("msg_1002", sent_at, second.decode()),
}
third = nb.webhook_message(1003)
stale = signing.Signer([secret]).headers("msg_1004", nb.webhook_message(1004), timestamp=int(time.time()) - 600)

exchanges = [
    nb.exchange("genuine, signed by labkit.wire.signing", hook.post("/webhook", content=body, headers=headers)),
    nb.exchange("genuine, signed by standardwebhooks", hook.post("/webhook", content=second, headers=by_package)),
    nb.exchange("forged: signed with a guessed secret", hook.post("/webhook", content=third, headers=signing.Signer([signing.new_secret()]).headers("msg_1003", third))),
    nb.exchange("tampered: status changed after signing", hook.post("/webhook", content=body.replace(b'"paid"', b'"refunded"'), headers=headers)),
    nb.exchange("unsigned: no webhook headers", hook.post("/webhook", content=third)),
    nb.exchange("replay of the first request (same webhook-id)", hook.post("/webhook", content=body, headers=headers)),
    nb.exchange("replay captured 10 minutes ago", hook.post("/webhook", content=nb.webhook_message(1004), headers=stale)),
    nb.exchange("replay with a refreshed timestamp", hook.post("/webhook", content=body, headers={**headers, "webhook-timestamp": str(int(time.time()) + 1)})),
]
pd.DataFrame(exchanges)

# %% [markdown]
# Only the two genuine requests were processed (204). Every attack got 401 and
# left nothing behind, except the immediate replay: it carries a valid
# signature and a fresh timestamp, so the receiver cannot tell it from the
# provider's own retry, and answers 200 as to a retry (or the provider would
# keep retrying). But its `webhook-id` was seen before, so it is **not processed
# twice**. Outside the 5-minute window the timestamp check refuses a replay, and
# the timestamp cannot be refreshed because it is part of the signed content.
# The receiver's own counters agree:

# %%
counters = hook.get("/stats").json()["counters"]
{key: counters[key] for key in ("requests", "accepted", "events_recorded", "duplicates", "rejected")}

# %% [markdown]
# ## The provider signs for real
#
# Subscribe the receiver to the provider, publish an event, and the provider's
# dispatcher delivers it, signed with the subscription's secret; the receiver
# verifies and records it (one more event recorded).

# %%
admin = httpx.Client(base_url=provider.url, headers={"authorization": "Bearer admin-key-1"}, timeout=10)
subscription = admin.post("/subscriptions", json={"url": f"{receiver.url}/webhook/shop", "secret": secret})
published = admin.post("/events", json={"type": "order.updated", "payload": {"order": 1005, "status": "paid"}})
time.sleep(1.0)
print("subscribe:", subscription.status_code, " publish:", published.status_code)
print("events recorded by the receiver:", hook.get("/stats").json()["counters"]["events_recorded"])

# %% [markdown]
# ## The polling API: keys and rate limits
#
# The provider's feed answers only callers with a key (401 otherwise), and
# meters each key: a token bucket of 3 requests refilled at 2 a second. Past
# it, **429 Too Many Requests** with `Retry-After` (RFC 6585), which a good
# poller obeys. The limit is per key: another key is not affected. (A 304 to a
# conditional request is refunded, as GitHub does.)

# %%
reader = httpx.Client(base_url=provider.url, headers={"authorization": "Bearer reader-key-1"}, timeout=10)
api = [
    nb.exchange("GET /events without a key", httpx.get(f"{provider.url}/events", params={"after": 0})),
    nb.exchange("GET /events with a wrong key", httpx.get(f"{provider.url}/events", params={"after": 0}, headers={"authorization": "Bearer guessed-key"})),
]
api += [nb.exchange(f"GET /events, reader-key-1, request {i + 1} of a burst", reader.get("/events", params={"after": 0})) for i in range(5)]
api.append(nb.exchange("GET /events, reader-key-2", httpx.get(f"{provider.url}/events", params={"after": 0}, headers={"authorization": "Bearer reader-key-2"})))
pd.DataFrame(api)

# %% [markdown]
# ## Why subscription URLs need an SSRF guard
#
# A webhook provider POSTs to whatever URL a customer registers. Registered
# naively, `http://169.254.169.254/...` makes the provider fetch its own cloud
# metadata (credentials included) from inside its network; `10.0.0.1` reaches
# its private services; `127.0.0.1` reaches itself. So every address a
# callback's host resolves to must be public, unless an allow-list names it,
# checked when the subscription is created and again at each connection (DNS
# can change in between). `check_callback_url` is that check; it only parses
# and resolves, **no request is sent to any of these addresses**:

# %%
nb.ssrf_verdicts(
    [
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://10.0.0.1/hook",
        "http://127.0.0.1:8080/hook",
        "http://[::ffff:169.254.169.254]/hook",
        "http://user:password@93.184.215.14/hook",
        "ftp://93.184.215.14/hook",
        "https://93.184.215.14/hook",
    ]
)

# %% [markdown]
# The real provider applies it when a subscription is created. Its allow-list
# names 127.0.0.1 (the lab's receivers live there), so loopback passes here,
# explicitly; the metadata address and the private network do not:

# %%
pd.DataFrame(
    [
        nb.exchange("subscribe http://169.254.169.254/latest/meta-data/", admin.post("/subscriptions", json={"url": "http://169.254.169.254/latest/meta-data/"})),
        nb.exchange("subscribe http://10.0.0.1/hook", admin.post("/subscriptions", json={"url": "http://10.0.0.1/hook"})),
        nb.exchange(f"subscribe {receiver.url}/webhook/other (allow-listed)", admin.post("/subscriptions", json={"url": f"{receiver.url}/webhook/other"})),
    ]
)

# %%
for client in (hook, admin, reader):
    client.close()
servers.stop_all()
shutil.rmtree(work)  # the settings files held the secret and the keys

# %% [markdown]
# ## The price of HTTPS
#
# "Must use HTTPS" has a cost: push opens a connection to each subscriber, and
# a fresh TLS handshake per delivery costs far more than the request itself;
# a poller keeps one connection open. `labkit tls-cost` measures it with
# locally generated certificates (median wall time and CPU per delivery, in ms):

# %%
nb.tls_cost(requests=TLS_REQUESTS)

# %% [markdown]
# ## What this means for your choice
#
# * **Push puts the security burden on every consumer.** Each receiver must
#   serve HTTPS publicly, verify the signature over the raw body in constant
#   time, reject stale timestamps, and de-duplicate by `webhook-id`. All of it
#   is a few lines with a library (`standardwebhooks`), but a receiver that
#   skips a step accepts forged or replayed events.
# * **Push puts an SSRF guard on the provider**: every callback URL checked
#   against private, loopback and link-local addresses, at creation and at
#   each connection.
# * **Polling keeps the door on the provider's side**: the consumer needs no
#   public endpoint, the provider authenticates every call (keys, OAuth scopes)
#   and meters it (429). That is the article's "fine-grained access", and the
#   reason consumers behind NAT or firewalls, or with sensitive data they will
#   not expose an endpoint for, often poll.
# * Keep connections alive either way: a TLS handshake per webhook costs more
#   than the delivery itself.

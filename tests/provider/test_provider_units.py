"""Unit tests: SSRF checks, token buckets, webhook bodies, the store's outbox (Retry-After: tests/wire)."""

from __future__ import annotations

import socket
from pathlib import Path

import orjson
import pytest

from labkit.consumers.records import RecordReader, RecordStore
from labkit.errors import ResultsError
from labkit.provider.dispatcher import event_json, iso_utc, webhook_body
from labkit.provider.ratelimit import RateLimiter
from labkit.provider.ssrf import check_callback_url
from labkit.provider.store import AttemptResult, Store

# -- ssrf -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/", "scheme"),
        ("gopher://127.0.0.1/", "scheme"),
        ("//example.com/x", "scheme"),
        ("http://", "host"),
        ("http://user:pw@8.8.8.8/", "credentials"),
        ("http://8.8.8.8:99999/", "malformed"),
        ("http://exa mple.com/", "whitespace"),
        ("http://127.0.0.1/", "loopback"),
        ("http://localhost:8000/hook", "loopback"),
        ("http://2130706433/", "loopback"),  # 127.0.0.1 in decimal, via the resolver
        ("http://0x7f.1/", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://100.64.0.1/", "non-global"),
        ("http://[::1]/", "loopback"),
        ("http://[::]/", "unspecified"),
        ("http://[fc00::1]/", "private"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://[2002:7f00:1::]/", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("http://[ff02::1]/", "multicast"),
    ],
)
def test_ssrf_refuses(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_callback_url(url, ())


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://8.8.8.8/hook", ()),
        ("https://[2001:4860:4860::8888]:8443/x", ()),
        ("http://127.0.0.1:9000/hook", ("127.0.0.1",)),
        ("http://127.0.0.5/", ("127.0.0.0/8",)),
        ("http://localhost:9000/", ("localhost",)),
        ("http://LOCALHOST./", ("localhost",)),
        ("http://10.0.0.7/", ("10.0.0.0/24",)),
        ("http://[::1]:9000/", ("::1",)),
        ("http://[::ffff:127.0.0.1]/", ("127.0.0.1",)),
    ],
)
def test_ssrf_allows(url: str, allowed: tuple[str, ...]) -> None:
    assert check_callback_url(url, allowed) == url


def test_ssrf_allowlist_is_exact() -> None:
    with pytest.raises(ValueError, match="private"):
        check_callback_url("http://10.0.1.7/", ("10.0.0.0/24",))
    with pytest.raises(ValueError, match="loopback"):
        check_callback_url("http://127.0.0.2/", ("127.0.0.1",))


def test_ssrf_unresolvable_host(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kw: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(ValueError, match="does not resolve"):
        check_callback_url("http://nowhere.example/", ())


def test_ssrf_any_bad_address_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    # a name with one public and one private address must not slip through
    def both(host: str, port: int, **kw: object) -> list:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", both)
    with pytest.raises(ValueError, match="private"):
        check_callback_url("http://mixed.example/", ())


# -- rate limit ---------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_token_bucket() -> None:
    clock = Clock()
    rl = RateLimiter(2.0, 3, clock=clock)
    assert [rl.take("k") for _ in range(3)] == [None, None, None]
    assert rl.take("k") == pytest.approx(0.5)
    assert rl.take("other") is None  # per key
    clock.t = 0.5
    assert rl.take("k") is None
    assert rl.take("k") == pytest.approx(0.5)
    rl.refund("k")
    assert rl.take("k") is None
    clock.t = 100.0  # refill is capped at the burst
    assert [rl.take("k") for _ in range(4)][-1] is not None


def test_rate_zero_is_off() -> None:
    rl = RateLimiter(0, 1)
    assert not rl.enabled
    assert all(rl.take("k") is None for _ in range(1000))


# -- bodies -----------------------------------------------------------------


def test_webhook_body_shapes() -> None:
    rows = [(1, "a", 1_700_000_000_000_000_000, b'{"x":1}'), (2, "b", 1_700_000_000_500_000_000, b"{}")]
    single = orjson.loads(webhook_body(rows[:1], batch=False, thin=False))
    assert single == {
        "type": "a",
        "timestamp": "2023-11-14T22:13:20.000000Z",
        "data": {"id": 1, "type": "a", "created_ns": 1_700_000_000_000_000_000, "payload": {"x": 1}},
    }
    thin = orjson.loads(webhook_body(rows[:1], batch=False, thin=True))
    assert "payload" not in thin["data"]
    batch = orjson.loads(webhook_body(rows, batch=True, thin=False))
    assert batch["type"] == "batch" and batch["timestamp"] == iso_utc(rows[1][2])
    assert [e["id"] for e in batch["data"]["events"]] == [1, 2]


# -- store ------------------------------------------------------------------------------


def test_publish_writes_event_and_outbox_together(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    all_ = store.create_subscription("http://x/", [], "whsec_x")
    only_b = store.create_subscription("http://y/", ["b"], "whsec_y")
    e1, _ = store.publish("a", b'{"n":1}')
    e2, _ = store.publish("b", b"{}")
    due = store.due_deliveries(2**62, 100)
    assert sorted((d.subscription_id, d.msg_id) for d in due) == sorted(
        [(all_.id, f"msg_{e1}"), (all_.id, f"msg_{e2}"), (only_b.id, f"msg_{e2}")]
    )
    assert store.head() == 2 and store.head(["a"]) == 1 and store.head(["zzz"]) == 0
    created = store.events_created()
    assert list(created) == [1, 2] and all(v > 0 for v in created.values())
    store.close()
    # a fresh Store (another process, after a restart) sees the same heads and outbox
    again = Store(str(tmp_path / "s.db"))
    assert again.head() == 2 and again.head(["b"]) == 2
    assert again.delivery_summary()["pending"] == 3
    # the runner's read-only helpers see the same, from the file alone
    assert Store.events_created_at(str(tmp_path / "s.db")) == created
    assert Store.delivery_summary_at(str(tmp_path / "s.db"))["pending"] == 3
    with pytest.raises(ResultsError, match="cannot be read"):
        Store.events_created_at(str(tmp_path / "missing.db"))
    assert not (tmp_path / "missing.db").exists()


def test_failed_publish_leaves_nothing(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    store.create_subscription("http://x/", [], "whsec_x")
    store._db.execute("CREATE TRIGGER boom BEFORE INSERT ON deliveries BEGIN SELECT RAISE(ABORT, 'boom'); END")
    with pytest.raises(Exception, match="boom"):
        store.publish("a", b"{}")
    assert store.events_created() == {} and store.head() == 0
    assert store.delivery_summary()["deliveries"] == 0


def test_delivery_summary_counts(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    sub = store.create_subscription("http://x/", [], "whsec_x")
    store.publish("a", b"{}")
    store.publish("a", b"{}")
    d1, d2 = store.due_deliveries(2**62, 10)
    store.record_attempts(
        [
            AttemptResult(d1.id, 1, 1, 2, 500, None, 10, 5, "pending", next_attempt_ns=3),
            AttemptResult(d2.id, 1, 1, 2, None, "timeout: ReadTimeout", 10, 0, "pending", next_attempt_ns=3),
        ]
    )
    store.record_attempts([AttemptResult(d1.id, 2, 4, 5, 200, None, 10, 5, "delivered")])
    store.record_attempts(
        [AttemptResult(d2.id, 2, 4, 5, 410, None, 10, 5, "disabled", disable_subscription=sub.id, disabled_reason="gone")]
    )
    s = store.delivery_summary()
    assert s["deliveries"] == 2 and s["delivered"] == 1 and s["disabled"] == 1 and s["pending"] == 0
    assert s["attempts"] == 4 and s["retries"] == 2
    assert s["attempt_status_counts"] == {"500": 1, "timeout": 1, "200": 1, "410": 1}
    assert store.subscription(sub.id).status == "disabled"  # type: ignore[union-attr]
    assert store.subscriptions_version == 2


def test_benchmark_reads_from_a_read_only_store(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = Store(path)
    store.create_subscription("http://x/", [], "whsec_x")
    store.publish("a", b"{}")
    (d1,) = store.due_deliveries(2**62, 10)
    store.record_attempts([AttemptResult(d1.id, 1, 10, 25, 503, None, 1, 1, "pending", next_attempt_ns=30)])
    store.publish("a", b"{}")
    d2 = next(d for d in store.due_deliveries(2**62, 10) if d.id != d1.id)
    store.record_attempts([AttemptResult(d2.id, 1, 40, 47, 200, None, 1, 1, "delivered")])
    with Store(path, readonly=True) as ro:
        assert ro.last_delivery_id() == d2.id
        assert sorted(ro.attempt_outcomes(0)) == [(10, 25, 503), (40, 47, 200)]
        assert ro.attempt_outcomes(d1.id) == [(40, 47, 200)]
        assert sorted(ro.event_attempts(1)) == [(1, 10, 25), (2, 40, 47)]
        assert ro.event_attempts(2) == [(2, 40, 47)]
    with Store(str(tmp_path / "empty.db")) as empty:
        assert empty.last_delivery_id() == 0 and empty.attempt_outcomes(0) == []
    store.close()


def test_record_reader_reads_incrementally_and_waits_for_the_store(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    reader = RecordReader(path)
    assert reader.rows_since(["c1"], 0) == []  # no store yet
    with RecordStore(str(path)) as records:
        records.record_page("c1", [1, 2, 3], 100, "3", None)
        records.record_page("c2", [2], 200, "2", None)
        assert sorted(reader.rows_since(["c1", "c2"], 2)) == [("c1", 2, 100), ("c1", 3, 100), ("c2", 2, 200)]
        assert reader.rows_since(["c2"], 3) == [] and reader.rows_since([], 0) == []
    reader.close()


def test_page_json_is_the_pages_events_spliced(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    types = ["a", 'quo"te\\back', "ünï 😀", "a"]
    payloads = [b'{"n":1}', b'{"big":1180591620717411303424, "s":"\\u00e9"}', '{"é":"😀"}'.encode(), b"{}"]
    for type_, payload in zip(types, payloads):
        store.publish(type_, payload)
    for after, limit, only in [(0, 10, ()), (1, 2, ()), (0, 10, ("a",)), (1, 10, ("ünï 😀", 'quo"te\\back')), (4, 10, ())]:
        rows = store.page(after, limit, only)
        assert store.page_json(after, limit, only) == (b",".join(event_json(r) for r in rows), rows[-1][0] if rows else 0)
    assert orjson.loads(b"[%s]" % store.page_json(0, 10)[0])[1]["type"] == 'quo"te\\back'

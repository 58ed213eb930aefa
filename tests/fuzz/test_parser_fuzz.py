"""Property-based fuzzing (hypothesis) of every parser that reads hostile or hand-written input.

Each parser either returns a value within its contract or raises its one
documented error type; anything else (a TypeError, an OverflowError, a
RecursionError) would be a 500 in a server or a traceback in the CLI.
"""

from __future__ import annotations

import ipaddress
import json
import math
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from labkit.config import RunSettings
from labkit.consumers.receiver import MAX_EVENT_ID, Rejected, parse_message
from labkit.errors import ConfigError
from labkit.provider import bodies, protocol, ssrf
from labkit.report.requirements import load_requirements
from labkit.runs.experiments import load_experiment
from labkit.wire.retryafter import MAX_RETRY_AFTER_S, parse_retry_after
from labkit.wire.signing import SignatureError, Signer, Verifier, new_secret
from tests.helpers.examples import fuzz_examples

# The whole suite tries 300 inputs per property; the fast subset (-m "not slow") the first 60 of the
# same derandomized stream (tests/helpers/examples.py), so the edit-test loop still fuzzes every parser.
FUZZ = settings(
    max_examples=fuzz_examples(),
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
SECRET = new_secret()

# -- the cursor feed's query --------------------------------------------------------------


@FUZZ
@given(
    st.one_of(
        st.text(max_size=40), st.integers(min_value=-(2**70), max_value=2**70).map(str), st.from_regex(r"[0-9]{1,25}", fullmatch=True)
    )
)
def test_cursor_is_an_event_id_or_a_400(value: str) -> None:
    try:
        cursor = protocol.parse_cursor(value)
    except HTTPException as exc:
        assert exc.status_code == 400 and "cursor" in str(exc.detail)
        return
    assert 0 <= cursor <= protocol.MAX_CURSOR
    assert cursor == (int(value) if value else 0)


@FUZZ
@given(st.binary(max_size=200))
def test_query_string_parsing_never_raises(raw: bytes) -> None:
    out = protocol.parse_query(raw)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in out.items())


@FUZZ
@given(st.binary(max_size=100), st.integers(min_value=0, max_value=2**63))
def test_etag_matching_never_raises_and_matches_itself(header: bytes, head: int) -> None:
    etag = b'"h%d"' % head
    assert protocol.etag_matches(etag, etag) and protocol.etag_matches(b"W/" + etag, etag)
    assert protocol.etag_matches(header, etag) in (True, False)


# -- Retry-After (the one parser) ------------------------------------------------------------------


@FUZZ
@given(
    st.one_of(
        st.none(),
        st.text(max_size=60),
        st.floats(allow_nan=True).map(str),
        st.datetimes().map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")),
    )
)
def test_retry_after_is_bounded_seconds_or_none(value: str | None) -> None:
    out = parse_retry_after(value)
    assert out is None or (math.isfinite(out) and 0 <= out <= MAX_RETRY_AFTER_S)


# -- webhook headers and bodies ----------------------------------------------------------------

header_text = st.text(st.characters(codec="latin-1"), max_size=120)


@FUZZ
@given(
    st.binary(max_size=300),
    st.dictionaries(st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature", "other"]), header_text),
)
def test_verification_only_ever_raises_signature_error(body: bytes, headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError):
        Verifier([SECRET]).verify(body, headers)


@FUZZ
@given(st.text(max_size=200), st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=40), st.data())
def test_a_signed_message_verifies_and_any_change_does_not(body: str, msg_id: str, data: st.DataObject) -> None:
    raw = body.encode()
    headers = Signer([new_secret(), SECRET]).headers(msg_id, raw)  # two signatures, as during a rotation
    Verifier([SECRET]).verify(raw, headers)
    changed = data.draw(st.binary(max_size=200))
    assume(changed != raw)
    with pytest.raises(SignatureError):
        Verifier([SECRET]).verify(changed, headers)


json_value = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=200),
        json_value.map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries({"type": st.sampled_from(["batch", "x"]), "data": json_value}).map(lambda v: json.dumps(v).encode()),
    )
)
def test_webhook_bodies_parse_or_are_400(body: bytes) -> None:
    try:
        events = parse_message(body)
    except Rejected as exc:
        assert exc.status == 400
        return
    assert events and all(type(e) is int and 0 <= e <= MAX_EVENT_ID for e, _ in events)


# -- JSON depth ---------------------------------------------------------------------------------


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@FUZZ
@given(json_value, st.integers(min_value=2, max_value=6))
def test_json_depth_check_agrees_with_a_plain_recursive_count(value: Any, limit: int) -> None:
    body = json.dumps(value).encode()
    assert bodies.json_depth_exceeds(body, value, limit) == (_depth(value) > limit)


# -- callback URLs (no DNS: only IP literals resolve here) --------------------------------------


def _literal_only(host: str, port: int) -> list[Any]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        raise ValueError(f"host {host!r} does not resolve") from None


ip_host = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"))


@FUZZ
@given(
    st.one_of(
        st.text(max_size=80),
        st.builds(
            lambda s, h, p, path: f"{s}://{h}{p}/{path}",
            st.sampled_from(["http", "https", "ftp", "HTTP"]),
            ip_host,
            st.sampled_from(["", ":80", ":65535", ":0", ":99999", ":x"]),
            st.text(max_size=20),
        ),
    )
)
def test_callback_urls_are_accepted_only_when_public(url: str) -> None:
    original = ssrf._resolve
    ssrf._resolve = _literal_only
    try:
        try:
            out = ssrf.check_callback_url(url)
        except ValueError:
            return
    finally:
        ssrf._resolve = original
    host = urlsplit(out).hostname
    assert host is not None and ipaddress.ip_address(host).is_global


# -- files people write: experiment, requirements, fault plans ----------------------------------

toml_scalar = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6).map(repr),
    st.booleans().map(lambda b: "true" if b else "false"),
    st.text(st.characters(codec="ascii", exclude_characters='"\\\n\r'), max_size=12).map(lambda s: f'"{s}"'),
)
toml_value = st.one_of(toml_scalar, st.lists(toml_scalar, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"))
RUN_KEYS = [
    "styles",
    "poll_interval_s",
    "pollers",
    "subscribers",
    "consumers",
    "drain_timeout_s",
    "time_scale",
    "batch_max_events",
    "long_poll_wait_s",
    "bogus",
]
WL_KEYS = ["arrival", "rate_per_s", "duration_s", "payload_bytes", "seed", "max_events", "trace_path"]


def _table(name: str, keys: list[str]) -> st.SearchStrategy[str]:
    return st.dictionaries(st.sampled_from(keys), toml_value, max_size=4).map(
        lambda d: f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in d.items())
    )


experiment_text = st.one_of(
    st.text(max_size=200),
    st.tuples(
        _table("experiment", ["name", "description", "question", "seed", "other"]), _table("run", RUN_KEYS), _table("workload", WL_KEYS)
    ).map("".join),
    st.tuples(
        _table("run", RUN_KEYS),
        st.sampled_from(
            [
                "",
                '[variants.a]\nfault = { kind = "consumer_kill", at_s = [1, 2] }\n',
                '[variants.b]\nfault = { kind = "nope" }\n',
                "[variants.c]\nfault = 3\n",
            ]
        ),
    ).map("".join),
)


@FUZZ
@given(experiment_text)
def test_experiment_files_load_or_fail_with_one_config_error(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = Path(tmp_path_factory.getbasetemp()) / "fuzz-experiment.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        exp = load_experiment(path)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    assert len(exp) >= 1


requirements_text = st.one_of(
    st.text(max_size=200),
    st.dictionaries(
        st.sampled_from(
            [
                "name",
                "target_latency_p99_ms",
                "event_rate_per_s",
                "burstiness",
                "consumers",
                "consumers_can_expose_https",
                "data_sensitivity",
                "ordering",
                "missed_events_tolerated",
                "other",
            ]
        ),
        toml_value,
        max_size=5,
    ).map(lambda d: "".join(f"{k} = {v}\n" for k, v in d.items())),
)


@FUZZ
@given(requirements_text)
def test_requirements_files_load_or_fail_with_one_config_error(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = Path(tmp_path_factory.getbasetemp()) / "fuzz-requirements.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        load_requirements(path)
    except ConfigError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["kind", "at_s", "duration_s", "restart_after_s", "rate", "status", "delay_ms", "loss", "reset", "x"]),
        json_value,
        max_size=5,
    )
)
def test_fault_plans_validate_or_raise_validation_error(plan: dict[str, Any]) -> None:
    try:
        RunSettings(fault=plan, styles=("webhook",))
    except ValidationError:
        pass

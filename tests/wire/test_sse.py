"""The one SSE decoder, on plain byte strings: the WHATWG rules, and any chunking gives the same events."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.wire.sse import BOM, Event, SseDecoder
from tests.helpers.examples import fuzz_examples


def decode(*pieces: bytes, decoder: SseDecoder | None = None) -> list[Event]:
    d = decoder or SseDecoder()
    return [e for p in pieces for e in d.feed(p)]


def reference(stream: bytes) -> tuple[list[Event], str, int | None]:
    """The standard's algorithm read literally: decode, drop one BOM, split lines at CRLF, LF or CR, apply fields."""
    text = stream.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines, line, i = [], "", 0
    while i < len(text):
        ch = text[i]
        if ch in "\r\n":
            lines.append(line)
            line = ""
            if ch == "\r" and text[i + 1 : i + 2] == "\n":
                i += 1
        else:
            line += ch
        i += 1
    events: list[Event] = []
    data, event_type, id_buffer, last_id, retry = "", "", "", "", None
    for line in lines:  # the unterminated last line (``line``) is never processed
        if line == "":
            last_id = id_buffer
            if data:
                events.append(Event(last_id, event_type or "message", data[:-1] if data.endswith("\n") else data))
            data, event_type = "", ""
        elif line.startswith(":"):
            continue
        else:
            name, colon, value = line.partition(":")
            if colon and value.startswith(" "):
                value = value[1:]
            if name == "data":
                data += value + "\n"
            elif name == "event":
                event_type = value
            elif name == "id" and "\0" not in value:
                id_buffer = value
            elif name == "retry" and value and all(c in "0123456789" for c in value):
                retry = int(value)
    return events, last_id, retry


def test_fields_join_and_dispatch() -> None:
    d = SseDecoder()
    got = decode(b"event: a\ndata: one\ndata: two\nid: 5\n\n", b"data:no space\n\n", b"data\n\n", decoder=d)
    assert got == [Event("5", "a", "one\ntwo"), Event("5", "message", "no space"), Event("5", "message", "")]
    assert d.last_event_id == "5" and d.retry_ms is None


def test_every_line_end_and_a_crlf_split_between_pieces() -> None:
    for stream in (b"data: x\n\n", b"data: x\r\n\r\n", b"data: x\r\r"):
        assert decode(stream) == [Event("", "message", "x")]
    # a CR ends its line at once; an LF first in the next piece is the rest of that CRLF, not an empty line
    d = SseDecoder()
    assert d.feed(b"data: x\r") == [] and d.feed(b"\r") == [Event("", "message", "x")]
    assert d.feed(b"\ndata: y\r") == [] and d.feed(b"\n") == [] and d.feed(b"\n") == [Event("", "message", "y")]


def test_comments_are_heartbeats_and_unknown_fields_are_ignored() -> None:
    d = SseDecoder()
    assert decode(b": heartbeat\n\n:\n\nfoo: bar\n\n", decoder=d) == [] and d.comments == 2


def test_retry_takes_ascii_digits_only() -> None:
    d = SseDecoder()
    decode(b"retry: 1500\n\n", decoder=d)
    assert d.retry_ms == 1500
    decode(b"retry: 15s\nretry: -1\nretry: \xc2\xb2\nretry:\n\n", decoder=d)  # "²" is a digit, not an ASCII one
    assert d.retry_ms == 1500


def test_ids_dispatch_with_the_event_and_a_nul_is_refused() -> None:
    d = SseDecoder(last_event_id="3")
    assert d.feed(b"data: a\nid: 4\n") == [] and d.last_event_id == "3"  # not dispatched yet: resume after 3
    assert d.feed(b"\n") == [Event("4", "message", "a")] and d.last_event_id == "4"
    assert decode(b"id: 9\x00\ndata: b\n\n", decoder=d) == [Event("4", "message", "b")]
    assert decode(b"id\n\n", decoder=d) == [] and d.last_event_id == ""  # an empty id resets it


def test_a_bom_is_dropped_once_even_split_and_only_at_the_start() -> None:
    assert decode(BOM + b"data: x\n\n") == [Event("", "message", "x")]
    assert decode(b"\xef", b"\xbb", b"\xbfdata: x\n\n") == [Event("", "message", "x")]
    assert decode(BOM + BOM + b"data: x\n\n") == []  # the second BOM is part of a field name
    assert decode(b"data: x\n\n" + BOM + b"data: y\n\n") == [Event("", "message", "x")]


def test_fields_split_anywhere_and_invalid_utf8() -> None:
    stream = 'event: é\ndata: {"a":"ü"}\nid: 12\n\n'.encode()
    for cut in range(len(stream) + 1):
        assert decode(stream[:cut], stream[cut:]) == [Event("12", "é", '{"a":"ü"}')]
    assert decode(b"data: \xff\n\n") == [Event("", "message", "\ufffd")]


def test_reconnected_keeps_the_id_and_retry_and_forgets_the_partial_event() -> None:
    d = SseDecoder()
    decode(b"retry: 10\nid: 2\ndata: a\n\ndata: half", decoder=d)
    d.reconnected()
    assert d.feed(BOM + b"data: b\n\n") == [Event("2", "message", "b")] and d.retry_ms == 10


# a stream of SSE-looking lines with every line end, split points anywhere
FIELD = st.sampled_from(["data", "id", "event", "retry", "", ":", "dat", "ID"])
VALUE = st.text(alphabet="ab1 :é\0\ufeff", max_size=6)
LINE = st.builds(lambda f, sep, v: f + sep + v, FIELD, st.sampled_from([":", ": ", "", ":  "]), VALUE)
END = st.sampled_from(["\n", "\r\n", "\r"])
STREAM = st.builds(
    lambda bom, lines: (b"\xef\xbb\xbf" if bom else b"") + "".join(line + end for line, end in lines).encode(),
    st.booleans(),
    st.lists(st.tuples(st.one_of(LINE, st.just("")), END), max_size=30),
)


@settings(max_examples=fuzz_examples(), deadline=None)
@given(STREAM, st.lists(st.integers(min_value=0, max_value=400), max_size=12), st.binary(max_size=3))
def test_any_chunking_gives_the_events_of_the_standard(stream: bytes, cuts: list[int], tail: bytes) -> None:
    stream += tail  # an unterminated end (perhaps a partial BOM or UTF-8 sequence) is never dispatched
    whole = SseDecoder()
    events = whole.feed(stream)
    points = sorted({min(c, len(stream)) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    split = SseDecoder()
    assert decode(*pieces, decoder=split) == events
    assert (split.last_event_id, split.retry_ms, split.comments) == (whole.last_event_id, whole.retry_ms, whole.comments)
    if not tail:
        assert (events, whole.last_event_id, whole.retry_ms) == reference(stream)


# the provider's frame (event, data, id, blank line: one per write) among other lines, each frame its own piece
# or the frames cut anywhere: the fast path for a whole provider frame gives what the field loop gives
TEXT = st.text(alphabet="ab1 :é\0\r\n\ufeff", max_size=5)
PROVIDER_FRAME = st.builds(lambda t, d, i: f"event: {t}\ndata: {d}\nid: {i}\n\n", TEXT, TEXT, TEXT)
OTHER_FRAME = st.builds(lambda lines: "".join(line + "\n" for line in lines), st.lists(st.one_of(LINE, st.just("")), max_size=4))


@settings(max_examples=fuzz_examples(), deadline=None)
@given(st.lists(st.one_of(PROVIDER_FRAME, OTHER_FRAME), max_size=12), st.booleans(), st.lists(st.integers(0, 400), max_size=6))
def test_provider_frames_one_per_piece_give_the_events_of_the_standard(frames: list[str], bom: bool, cuts: list[int]) -> None:
    pieces = [(BOM if bom else b"") + b": labkit stream\nretry: 3000\n\n", *(f.encode() for f in frames)]
    stream = b"".join(pieces)
    per_frame, pushed = SseDecoder(), []
    per_frame.on_event = lambda *e: pushed.append(Event(*e))
    for piece in pieces:
        per_frame.push(piece)
    assert (pushed, per_frame.last_event_id, per_frame.retry_ms) == reference(stream)
    points = sorted({min(c, len(stream)) for c in cuts})
    cut = SseDecoder()
    assert decode(*(stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)), decoder=cut) == pushed
    assert (cut.last_event_id, cut.comments) == (per_frame.last_event_id, per_frame.comments)


def test_the_provider_frame_fast_path_keeps_the_rules() -> None:
    d = SseDecoder()
    assert d.feed(b": labkit stream\n\n") == [] and d.comments == 1
    assert d.feed(b'event: a\ndata: {"x":1}\nid: 7\n\n') == [Event("7", "a", '{"x":1}')] and d.last_event_id == "7"
    assert d.feed(b"event: \ndata: \nid: 8\n\n") == [Event("8", "message", "")]  # empty type and data
    assert d.feed(b"event: a\ndata: b\nid: 9\x00\n\n") == [Event("8", "a", "b")] and d.last_event_id == "8"  # NUL id ignored
    assert d.feed(b"data: half") == [] and d.feed(b"\nevent: a\ndata: c\nid: 10\n\n") == [Event("10", "a", "half\nc")]
    assert d.feed(b"event: b\n") == [] and d.feed(b"event: a\ndata: d\nid: 11\n\n") == [Event("11", "a", "d")]
    events: list[tuple[str, str, str]] = []
    d.on_event = lambda *e: events.append(e)
    d.push(b"event: a\ndata: e\nid: 12\n\n")
    assert events == [("12", "a", "e")] and d.last_event_id == "12"

"""`EventSplitter` and `parse_event`: any split of a stream yields the same events,
byte for byte, whatever the line endings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentctl.sse import EventSplitter, parse_event

SAMPLE_LF = (
    b": keep-alive comment\n\n"
    b'data: {"id":"1","choices":[{"delta":{"content":"h\xc3\xa9llo"}}],"usage":null}\n\n'
    b"event: message_delta\n"
    b'data: {"type":"message_delta","usage":{"output_tokens":7}}\n\n'
    b": comment inside\n"
    b"data: line one\n"
    b"data: line two\n\n"
    b"id: 42\nretry: 100\ndata:no-space\n\n"
    b"data: [DONE]\n\n"
)
SAMPLE_CRLF = SAMPLE_LF.replace(b"\n", b"\r\n")
SAMPLE_CR = SAMPLE_LF.replace(b"\n", b"\r")


def events_of(stream: bytes, terminator: bytes) -> list[bytes]:
    return [part + terminator for part in stream.split(terminator) if part]


def feed_all(chunks: list[bytes]) -> tuple[list[bytes], bytes]:
    splitter = EventSplitter()
    events: list[bytes] = []
    for chunk in chunks:
        events += splitter.feed(chunk)
    return events, splitter.remainder()


@pytest.mark.parametrize(
    ("stream", "terminator"),
    [(SAMPLE_LF, b"\n\n"), (SAMPLE_CRLF, b"\r\n\r\n"), (SAMPLE_CR, b"\r\r")],
    ids=["lf", "crlf", "cr"],
)
def test_every_single_split_point(stream: bytes, terminator: bytes) -> None:
    expected = events_of(stream, terminator)
    assert len(expected) == 6
    want = _complete(expected, terminator)
    assert feed_all([stream]) == want
    for cut in range(len(stream) + 1):
        assert feed_all([stream[:cut], stream[cut:]]) == want, cut


def _complete(expected: list[bytes], terminator: bytes) -> tuple[list[bytes], bytes]:
    """A CR at the very end of what has arrived may be the first half of a CRLF, so a
    CR-only stream's last event is only known complete when the stream ends (it is
    then flushed from the remainder, byte for byte)."""
    if terminator == b"\r\r":
        return expected[:-1], expected[-1]
    return expected, b""


@pytest.mark.parametrize("stream", [SAMPLE_LF, SAMPLE_CRLF, SAMPLE_CR], ids=["lf", "crlf", "cr"])
def test_byte_at_a_time(stream: bytes) -> None:
    events, rest = feed_all([stream[i : i + 1] for i in range(len(stream))])
    assert b"".join(events) + rest == stream
    assert len(events) + bool(rest) == 6
    assert rest == (b"data: [DONE]\r\r" if stream == SAMPLE_CR else b"")


@settings(deadline=None)
@given(
    st.sampled_from([SAMPLE_LF, SAMPLE_CRLF, SAMPLE_CR]),
    st.lists(st.integers(min_value=0, max_value=len(SAMPLE_CRLF)), max_size=30),
    st.binary(max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b),
)
def test_any_splits_give_the_same_events(stream: bytes, cuts: list[int], tail: bytes) -> None:
    whole = stream + tail  # an unterminated last event stays in the remainder
    points = sorted({min(c, len(whole)) for c in cuts})
    chunks = [whole[a:b] for a, b in zip([0, *points], [*points, len(whole)], strict=True)]
    events, rest = feed_all(chunks)
    assert (events, rest) == feed_all([whole])
    assert b"".join(events) + rest == whole
    assert rest.endswith(tail)


def test_remainder_clears() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b"data: partial") == []
    assert splitter.remainder() == b"data: partial"
    assert splitter.remainder() == b""
    assert splitter.feed(b"\n\ndata: x\n\n") == [b"\n\n", b"data: x\n\n"]


def test_mixed_line_endings_end_an_event() -> None:
    stream = b"data: a\n\r\ndata: b\n\n"
    assert feed_all([stream])[0] == [b"data: a\n\r\n", b"data: b\n\n"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'data: {"a":1}\n\n', (None, b'{"a":1}')),
        (b"data:{}\n\n", (None, b"{}")),
        (b"data:  two spaces\n\n", (None, b" two spaces")),
        (b"event: message_start\ndata: x\n\n", ("message_start", b"x")),
        (b"event: e\r\ndata: x\r\n\r\n", ("e", b"x")),
        (b"event: e\rdata: x\r\r", ("e", b"x")),
        (b"data: a\ndata: b\n\n", (None, b"a\nb")),
        (b": comment\ndata: a\n: more\ndata: b\n\n", (None, b"a\nb")),
        (b": only a comment\n\n", (None, b"")),
        (b"data\n\n", (None, b"")),
        (b"id: 1\nretry: 5\ndata: x\n\n", (None, b"x")),
        (b"data: [DONE]\n\n", (None, b"[DONE]")),
    ],
)
def test_parse_event(raw: bytes, expected: tuple[str | None, bytes]) -> None:
    assert parse_event(raw) == expected

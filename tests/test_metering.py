"""`StreamMeter`: usage read from every streamed wire format, bytes forwarded untouched
except the usage chunk the gateway injected, and the estimation fallback."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentctl.facts import CHAT, COMPLETIONS, MESSAGES, RESPONSES
from agentctl.gateway.metering import StreamMeter, estimate
from agentctl.usage import Usage


def data(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def named(kind: str, obj: Any) -> bytes:
    return f"event: {kind}\n".encode() + data(obj)


def chunk(content: str, usage: Any = None) -> bytes:
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": None}
    return data(
        {"id": "c1", "object": "chat.completion.chunk", "choices": [choice], "usage": usage}
    )


OPENAI_USAGE = {
    "prompt_tokens": 11,
    "completion_tokens": 3,
    "total_tokens": 14,
    "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 2, "audio_tokens": 0},
}
USAGE_CHUNK = data(
    {"id": "c1", "object": "chat.completion.chunk", "choices": [], "usage": OPENAI_USAGE}
)
CHAT_STREAM = [
    chunk(""),
    chunk("one"),
    chunk("two"),
    chunk("three"),
    USAGE_CHUNK,
    b"data: [DONE]\n\n",
]
CHAT_USAGE = Usage(prompt_tokens=11, completion_tokens=3, cached_tokens=4, reasoning_tokens=2)


def run(meter: StreamMeter, chunks: list[bytes]) -> bytes:
    out = b"".join(meter.feed(c) for c in chunks)
    return out + meter.finish()


@pytest.mark.parametrize("api", [CHAT, COMPLETIONS])
def test_openai_usage_chunk_hidden_only_when_asked(api: str) -> None:
    stream = b"".join(CHAT_STREAM)
    hidden = StreamMeter(api, hide_usage_chunk=True)
    assert run(hidden, [stream]) == stream.replace(USAGE_CHUNK, b"")
    assert hidden.usage == CHAT_USAGE
    shown = StreamMeter(api, hide_usage_chunk=False)
    assert run(shown, [stream]) == stream
    assert shown.usage == CHAT_USAGE
    # content events: the role chunk and three deltas; usage and [DONE] are not content
    assert hidden.content_events == shown.content_events == 4


def test_usage_on_a_content_chunk_is_never_hidden() -> None:
    """Some servers put usage on the last chunk that still has choices: keep it."""
    last = chunk("end", OPENAI_USAGE)
    stream = chunk("a") + last + b"data: [DONE]\n\n"
    meter = StreamMeter(CHAT, hide_usage_chunk=True)
    assert run(meter, [stream]) == stream
    assert meter.usage == CHAT_USAGE


@settings(deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(b"".join(CHAT_STREAM))), max_size=20))
def test_split_points_do_not_change_output_or_usage(cuts: list[int]) -> None:
    stream = b"".join(CHAT_STREAM)
    points = sorted(set(cuts))
    parts = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    meter = StreamMeter(CHAT, hide_usage_chunk=True)
    assert run(meter, parts) == stream.replace(USAGE_CHUNK, b"")
    assert meter.usage == CHAT_USAGE
    assert meter.content_events == 4


def test_no_usage_leaves_meter_empty_and_counts_content() -> None:
    stream = b"".join(CHAT_STREAM[:4]) + b"data: [DONE]\n\n"
    meter = StreamMeter(CHAT, hide_usage_chunk=True)
    assert run(meter, [stream]) == stream
    assert meter.usage is None
    assert meter.content_events == 4


def test_unterminated_last_event_is_forwarded_and_metered() -> None:
    stream = chunk("a") + USAGE_CHUNK.rstrip(b"\n")
    meter = StreamMeter(CHAT)
    assert run(meter, [stream]) == stream
    assert meter.usage == CHAT_USAGE


def test_a_model_writing_done_does_not_end_metering() -> None:
    """Regression: any event containing "[DONE]" used to mark the stream terminal, so a
    model that wrote the word ended metering before the usage chunk (estimated cost)."""
    meter = StreamMeter(CHAT, hide_usage_chunk=True)
    events = [chunk("[DONE]"), chunk("x"), data({"x": "[DONE]"})]
    out = run(meter, events)
    assert not meter.terminal and meter.content_events == 3
    assert out == b"".join(events)
    run(meter, [USAGE_CHUNK, b"data:[DONE]\n\n"])
    assert meter.terminal and meter.usage == CHAT_USAGE


def test_usage_key_written_with_spaces_is_still_null() -> None:
    meter = StreamMeter(CHAT)
    spaced = b'data: {"id":"c1","choices":[{"delta":{"content":"usage"}}],"usage" : null}\n\n'
    run(meter, [spaced, chunk("a")])
    assert meter.usage is None and meter.content_events == 2


def test_absurdly_nested_upstream_json_is_not_an_error() -> None:
    meter = StreamMeter(CHAT)
    deep = b'data: {"usage": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n\n"
    assert run(meter, [deep]) == deep
    assert meter.usage is None


def test_error_event_is_noticed() -> None:
    meter = StreamMeter(CHAT)
    run(meter, [chunk("a"), data({"error": {"message": "boom", "type": "server_error"}})])
    assert meter.error == "upstream error event"


def anthropic_stream(deltas: list[dict[str, Any]]) -> list[bytes]:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "usage": {
                "input_tokens": 20,
                "cache_read_input_tokens": 5,
                "cache_creation_input_tokens": 3,
                "output_tokens": 1,
            },
        },
    }
    text = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "hi"},
    }
    out = [named("message_start", start), named("content_block_delta", text)]
    for usage in deltas:
        out.append(named("content_block_delta", text))
        out.append(named("message_delta", {"type": "message_delta", "delta": {}, "usage": usage}))
    out.append(named("message_stop", {"type": "message_stop"}))
    return out


def test_anthropic_cumulative_output_is_taken_last_not_summed() -> None:
    events = anthropic_stream([{"output_tokens": 5}, {"output_tokens": 12}])
    meter = StreamMeter(MESSAGES, hide_usage_chunk=True)
    assert run(meter, events) == b"".join(events)
    assert meter.usage == Usage(
        prompt_tokens=28, completion_tokens=12, cached_tokens=5, cache_write_tokens=3
    )
    assert meter.content_events == 3


def test_anthropic_delta_may_restate_input_and_nulls_do_not_erase() -> None:
    deltas = [
        {"output_tokens": 7, "input_tokens": 22, "cache_read_input_tokens": None},
    ]
    meter = StreamMeter(MESSAGES)
    run(meter, anthropic_stream(deltas))
    assert meter.usage == Usage(
        prompt_tokens=30, completion_tokens=7, cached_tokens=5, cache_write_tokens=3
    )


def test_anthropic_without_message_delta_keeps_start_usage() -> None:
    events = anthropic_stream([])
    meter = StreamMeter(MESSAGES)
    run(meter, events)
    assert meter.usage == Usage(
        prompt_tokens=28, completion_tokens=1, cached_tokens=5, cache_write_tokens=3
    )


def test_anthropic_split_byte_by_byte() -> None:
    stream = b"".join(anthropic_stream([{"output_tokens": 5}, {"output_tokens": 9}]))
    meter = StreamMeter(MESSAGES)
    assert run(meter, [stream[i : i + 1] for i in range(len(stream))]) == stream
    assert meter.usage is not None and meter.usage.completion_tokens == 9


RESPONSES_USAGE = {
    "input_tokens": 9,
    "input_tokens_details": {"cached_tokens": 2},
    "output_tokens": 6,
    "output_tokens_details": {"reasoning_tokens": 1},
    "total_tokens": 15,
}


@pytest.mark.parametrize(
    "terminal", ["response.completed", "response.incomplete", "response.failed"]
)
def test_responses_usage_from_terminal_event(terminal: str) -> None:
    created = {"type": "response.created", "response": {"id": "r1", "usage": None}}
    delta = {"type": "response.output_text.delta", "delta": "hello"}
    done = {"type": terminal, "response": {"id": "r1", "usage": RESPONSES_USAGE}}
    events = [
        named("response.created", created),
        named(delta["type"], delta),
        named(terminal, done),
    ]
    meter = StreamMeter(RESPONSES, hide_usage_chunk=True)
    assert run(meter, events) == b"".join(events)
    assert meter.usage == Usage(
        prompt_tokens=9, completion_tokens=6, cached_tokens=2, reasoning_tokens=1
    )


def test_responses_non_terminal_usage_is_ignored() -> None:
    """Only the terminal event's usage counts; an in-progress snapshot is not final."""
    progress = {"type": "response.in_progress", "response": {"id": "r1", "usage": RESPONSES_USAGE}}
    meter = StreamMeter(RESPONSES)
    run(meter, [named("response.in_progress", progress)])
    assert meter.usage is None


def test_estimate_is_flagged() -> None:
    assert estimate(30, 4) == Usage(prompt_tokens=30, completion_tokens=4, source="estimated")

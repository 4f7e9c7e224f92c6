"""Anthropic Messages wire format (`POST /v1/messages`), reference/protocol.md section 2.

Stream order: `message_start` (input and cache usage, placeholder `output_tokens: 1`),
`content_block_start`, `ping`, one `content_block_delta` per word, `content_block_stop`,
`message_delta` (cumulative `output_tokens`), `message_stop`; every `event:` line equals
its `data.type` and there is no `[DONE]`. Unlike OpenAI, `input_tokens` excludes the
cache fields (see `accounting`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentctl.simulator.accounting import MESSAGES, Counts, reply_deltas_json, reply_text, usage
from agentctl.simulator.delivery import Exchange, JsonReply, StreamReply, event
from agentctl.simulator.openai import RATE_LIMIT_HEADERS, encode

# status -> error.type, as documented by Anthropic
_ERRORS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def headers(token: str) -> dict[str, str]:
    return {**RATE_LIMIT_HEADERS, "request-id": f"req_{token}"}


def error(status: int, exchange_headers: dict[str, str], message: str | None = None) -> JsonReply:
    kind = _ERRORS.get(status, "api_error")
    body = {
        "type": "error",
        "error": {"type": kind, "message": message or f"Simulated {kind} ({status})."},
        "request_id": exchange_headers.get("request-id"),
    }
    return JsonReply(encode(body).encode(), exchange_headers, status)


def message(body: Mapping[str, Any], counts: Counts, ex: Exchange) -> JsonReply | StreamReply:
    model: str = body["model"]
    stop_reason = "max_tokens" if counts.truncated else "end_turn"
    final_usage = usage(MESSAGES, counts)
    if body.get("stream") is not True:
        reply = {
            "id": f"msg_{ex.token}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": reply_text(counts.visible)}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": final_usage,
        }
        return JsonReply(encode(reply).encode(), ex.headers)

    start: dict[str, Any] = {
        "type": "message_start",
        "message": {
            "id": f"msg_{ex.token}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**final_usage, "output_tokens": 1},
        },
    }
    delta_head = '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":'
    events = [
        event("message_start", encode(start)),
        event(
            "content_block_start",
            '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
        ),
        event("ping", '{"type":"ping"}'),
    ]
    events += [
        f"event: content_block_delta\ndata: {delta_head}{word}}}}}\n\n"
        for word in reply_deltas_json(counts.visible)
    ]
    events += [
        event("content_block_stop", '{"type":"content_block_stop","index":0}'),
        event(
            "message_delta",
            f'{{"type":"message_delta","delta":{{"stop_reason":"{stop_reason}",'
            f'"stop_sequence":null}},"usage":{{"output_tokens":{counts.completion}}}}}',
        ),
        event("message_stop", '{"type":"message_stop"}'),
    ]
    return StreamReply(events, ex.headers)

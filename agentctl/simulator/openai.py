"""OpenAI wire formats: chat completions, legacy completions, embeddings, responses, models.

Bodies follow what the official SDK parses (reference/protocol.md sections 1.1-1.5).
Stream chunks are assembled from string templates around pre-encoded words rather
than one `json.dumps` per chunk: streams are the hot path of every benchmark.
Chat and completions streams carry `"usage": null` on every chunk and a final
`"choices": []` usage chunk only when the request asked for
`stream_options.include_usage` (and `omit_usage` is off); responses streams end with
`response.completed` (or `response.incomplete` when cut by `max_output_tokens`) and
no `[DONE]`.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Mapping
from typing import Any

from agentctl.simulator.accounting import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    RESPONSES,
    Counts,
    reply_deltas_json,
    reply_text,
    usage,
)
from agentctl.simulator.behaviour import InvalidRequest
from agentctl.simulator.delivery import Exchange, JsonReply, StreamReply, event

FINGERPRINT = "fp_agentctl_sim"
MODEL_CREATED = 1_700_000_000
DONE = "data: [DONE]\n\n"
encode = json.JSONEncoder(separators=(",", ":")).encode

RATE_LIMIT_HEADERS = {
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-limit-tokens": "10000000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-remaining-tokens": "9990000",
    "x-ratelimit-reset-requests": "6ms",
    "x-ratelimit-reset-tokens": "0s",
}
_BASE_HEADERS = {
    "openai-version": "2020-10-01",
    "openai-organization": "agentctl-simulator",
    **RATE_LIMIT_HEADERS,
}
# status -> (error.type, error.code, message)
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", "invalid_value", "Simulated invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "permission_denied", "Simulated permission error."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    409: ("invalid_request_error", "conflict", "Simulated conflict."),
    422: ("invalid_request_error", "unprocessable_entity", "Simulated unprocessable entity."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests (simulated)."),
    500: ("server_error", None, "The server had an error processing your request (simulated)."),
    502: ("server_error", "bad_gateway", "Bad gateway (simulated)."),
    503: ("server_error", "service_unavailable", "The engine is overloaded (simulated)."),
}


def headers(token: str) -> dict[str, str]:
    # The provider's edge sets a bot-management cookie on every answer (Secure there;
    # this server speaks plain HTTP, so without it).
    cookie = f"__cf_bm={token}; path=/; HttpOnly; SameSite=None"
    return {**_BASE_HEADERS, "x-request-id": f"req_{token}", "set-cookie": cookie}


def error(
    status: int,
    exchange_headers: dict[str, str],
    message: str | None = None,
    *,
    param: str | None = None,
    code: str | None = None,
) -> JsonReply:
    kind, default_code, default_message = _ERRORS.get(
        status, ("api_error", None, f"Simulated error {status}.")
    )
    body = {
        "error": {
            "message": message or default_message,
            "type": kind,
            "param": param,
            "code": code or default_code,
        }
    }
    return JsonReply(encode(body).encode(), exchange_headers, status)


def _include_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _chunk_head(prefix: str, kind: str, ex: Exchange, model: str) -> str:
    return (
        f'data: {{"id":"{prefix}-{ex.token}","object":"{kind}","created":{ex.created},'
        f'"model":{encode(model)},"system_fingerprint":"{FINGERPRINT}","choices":['
    )


def chat(body: Mapping[str, Any], counts: Counts, ex: Exchange) -> JsonReply | StreamReply:
    model: str = body["model"]
    finish = "length" if counts.truncated else "stop"
    if body.get("stream") is not True:
        text = reply_text(counts.visible)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text,
            "refusal": None,
            "annotations": [],
        }
        reply = {
            "id": f"chatcmpl-{ex.token}",
            "object": "chat.completion",
            "created": ex.created,
            "model": model,
            "choices": [
                {"index": i, "message": message, "logprobs": None, "finish_reason": finish}
                for i in range(counts.choices)
            ],
            "usage": usage(CHAT, counts),
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }
        return JsonReply(encode(reply).encode(), ex.headers)

    include = _include_usage(body)
    head = _chunk_head("chatcmpl", "chat.completion.chunk", ex, model)
    tail = "]" + (',"usage":null}' if include else "}") + "\n\n"
    rest = ',"logprobs":null,"finish_reason":null}' + tail
    indices = range(counts.choices)
    events = [
        f'{head}{{"index":{i},"delta":{{"role":"assistant","content":"","refusal":null}}{rest}'
        for i in indices
    ]
    for word in reply_deltas_json(counts.visible):
        events.extend(f'{head}{{"index":{i},"delta":{{"content":{word}}}{rest}' for i in indices)
    events.extend(
        f'{head}{{"index":{i},"delta":{{}},"logprobs":null,"finish_reason":"{finish}"}}{tail}'
        for i in indices
    )
    if include and not ex.behaviour.omit_usage:
        events.append(f'{head}],"usage":{encode(usage(CHAT, counts))}}}\n\n')
    events.append(DONE)
    return StreamReply(events, ex.headers)


def completion(body: Mapping[str, Any], counts: Counts, ex: Exchange) -> JsonReply | StreamReply:
    model: str = body["model"]
    finish = "length" if counts.truncated else "stop"
    if body.get("stream") is not True:
        text = reply_text(counts.visible)
        reply = {
            "id": f"cmpl-{ex.token}",
            "object": "text_completion",
            "created": ex.created,
            "model": model,
            "choices": [
                {"text": text, "index": i, "logprobs": None, "finish_reason": finish}
                for i in range(counts.choices)
            ],
            "usage": usage(COMPLETIONS, counts),
            "system_fingerprint": FINGERPRINT,
        }
        return JsonReply(encode(reply).encode(), ex.headers)

    include = _include_usage(body)
    head = _chunk_head("cmpl", "text_completion", ex, model)
    tail = "]" + (',"usage":null}' if include else "}") + "\n\n"
    indices = range(counts.choices)
    events: list[str] = []
    for word in reply_deltas_json(counts.visible):
        events.extend(
            f'{head}{{"text":{word},"index":{i},"logprobs":null,"finish_reason":null}}{tail}'
            for i in indices
        )
    events.extend(
        f'{head}{{"text":"","index":{i},"logprobs":null,"finish_reason":"{finish}"}}{tail}'
        for i in indices
    )
    if include and not ex.behaviour.omit_usage:
        events.append(f'{head}],"usage":{encode(usage(COMPLETIONS, counts))}}}\n\n')
    events.append(DONE)
    return StreamReply(events, ex.headers)


def embedding_vector(item: Any, dimensions: int) -> list[float]:
    """A deterministic vector per input; k/128 values survive float32 exactly."""
    seed = zlib.crc32(encode(item).encode())
    return [((seed + d * 7919) % 256 - 128) / 128 for d in range(dimensions)]


def embedding_inputs(value: Any) -> list[Any]:
    if isinstance(value, list) and value and not all(isinstance(v, int) for v in value):
        return value
    return [value]


def embeddings(
    body: Mapping[str, Any], counts: Counts, ex: Exchange, default_dimensions: int
) -> JsonReply:
    dimensions = body.get("dimensions", default_dimensions)
    if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1:
        raise InvalidRequest("'dimensions' must be a positive integer", "dimensions")
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise InvalidRequest("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    data = []
    for index, item in enumerate(embedding_inputs(body["input"])):
        vector: list[float] | str = embedding_vector(item, dimensions)
        if fmt == "base64":
            vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    reply = {
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": usage(EMBEDDINGS, counts),
    }
    return JsonReply(encode(reply).encode(), ex.headers)


def _response_object(
    body: Mapping[str, Any], ex: Exchange, status: str, output: list[Any], usage_: Any
) -> dict[str, Any]:
    return {
        "id": f"resp_{ex.token}",
        "object": "response",
        "created_at": ex.created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": ({"reason": "max_output_tokens"} if status == "incomplete" else None),
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage_,
        "metadata": {},
    }


def response(body: Mapping[str, Any], counts: Counts, ex: Exchange) -> JsonReply | StreamReply:
    status = "incomplete" if counts.truncated else "completed"
    text = reply_text(counts.visible)
    message_id = f"msg_{ex.token}"
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    message = {
        "id": message_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [part],
    }
    reasoning = {"id": f"rs_{ex.token}", "type": "reasoning", "summary": []}
    output = [reasoning, message] if counts.reasoning else [message]
    usage_ = None if ex.behaviour.omit_usage else usage(RESPONSES, counts)
    final = _response_object(body, ex, status, output, usage_)
    if body.get("stream") is not True:
        return JsonReply(encode(final).encode(), ex.headers)

    started = encode(_response_object(body, ex, "in_progress", [], None))
    where = f'"item_id":"{message_id}","output_index":{len(output) - 1},"content_index":0'
    payloads: list[tuple[str, str]] = [
        ("response.created", f'"response":{started}'),
        ("response.in_progress", f'"response":{started}'),
    ]
    for index, item in enumerate(output[:-1]):
        done = encode(item)
        payloads.append(("response.output_item.added", f'"output_index":{index},"item":{done}'))
        payloads.append(("response.output_item.done", f'"output_index":{index},"item":{done}'))
    opened = encode({**message, "status": "in_progress", "content": []})
    empty = encode({**part, "text": ""})
    payloads += [
        ("response.output_item.added", f'"output_index":{len(output) - 1},"item":{opened}'),
        ("response.content_part.added", f'{where},"part":{empty}'),
    ]
    payloads += [
        ("response.output_text.delta", f'{where},"delta":{word},"logprobs":[]')
        for word in reply_deltas_json(counts.visible)
    ]
    payloads += [
        ("response.output_text.done", f'{where},"text":{encode(text)},"logprobs":[]'),
        ("response.content_part.done", f'{where},"part":{encode(part)}'),
        ("response.output_item.done", f'"output_index":{len(output) - 1},"item":{encode(message)}'),
        (f"response.{status}", f'"response":{encode(final)}'),
    ]
    events = [
        event(kind, f'{{"type":"{kind}","sequence_number":{n},{fields}}}')
        for n, (kind, fields) in enumerate(payloads)
    ]
    return StreamReply(events, ex.headers)


def _model(model_id: str) -> dict[str, Any]:
    owner = "anthropic" if model_id.startswith("claude") else "openai"
    return {"id": model_id, "object": "model", "created": MODEL_CREATED, "owned_by": owner}


def models(model_ids: list[str], ex: Exchange) -> JsonReply:
    body = {"object": "list", "data": [_model(m) for m in model_ids]}
    return JsonReply(encode(body).encode(), ex.headers)


def model(model_id: str, model_ids: list[str], ex: Exchange) -> JsonReply:
    if model_id not in model_ids:
        message = f"The model '{model_id}' does not exist or you do not have access to it."
        return error(404, ex.headers, message, param="model", code="model_not_found")
    return JsonReply(encode(_model(model_id)).encode(), ex.headers)

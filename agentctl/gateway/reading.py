"""Step 2 of the pipeline: a bounded body read, one JSON parse, and the request facts.

Every client mistake here is a 4xx in the OpenAI error shape naming the problem:
413 for oversize bodies (checked against Content-Length before reading, and while
reading for chunked bodies), 400 for non-UTF-8 bytes, invalid JSON, a body that is
not an object, or a missing/mistyped `model`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

from agentctl.errors import GatewayError
from agentctl.facts import COMPLETIONS, EMBEDDINGS, MESSAGES, RESPONSES, RequestFacts
from agentctl.trust.prompt import prompt_hash

_OUTPUT_FIELDS = {
    RESPONSES: ("max_output_tokens",),
    MESSAGES: ("max_tokens",),
}
_DEFAULT_OUTPUT_FIELDS = ("max_completion_tokens", "max_tokens")


def _too_large(limit: int) -> GatewayError:
    return GatewayError(
        413,
        "request_too_large",
        f"request body is larger than the gateway limit of {limit} bytes",
        type="invalid_request_error",
    )


async def read_body(request: web.Request, limit: int) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise GatewayError(400, "invalid_json", "request body is empty; send a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GatewayError(
            400,
            "invalid_encoding",
            f"request body is not valid UTF-8 (byte {exc.start}); send UTF-8 encoded JSON",
        ) from None
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise GatewayError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise GatewayError(400, "invalid_json", "request body must be a JSON object")
    return body


def _int_field(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise GatewayError(
            400, "invalid_value", f"'{name}' must be a non-negative integer", param=name
        )
    return value


def extract_facts(
    body: dict[str, Any], raw_size: int, endpoint: str, path: str, retry_count: int = 0
) -> RequestFacts:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise GatewayError(
            400,
            "missing_model" if model is None else "invalid_value",
            "'model' is required and must be a non-empty string",
            param="model",
        )
    stream = body.get("stream")
    if stream is None:  # "boolean or null" in the OpenAI API
        stream = False
    if not isinstance(stream, bool):
        raise GatewayError(400, "invalid_value", "'stream' must be true or false", param="stream")
    max_output = None
    for name in _OUTPUT_FIELDS.get(endpoint, _DEFAULT_OUTPUT_FIELDS):
        value = _int_field(body, name)
        if value is not None:
            max_output = value
            break
    n = _int_field(body, "n") if endpoint not in (EMBEDDINGS, MESSAGES, RESPONSES) else None
    if endpoint == COMPLETIONS:
        best_of = _int_field(body, "best_of")
        if best_of and best_of > (n or 1):
            n = best_of
    return RequestFacts(
        endpoint=endpoint,
        path=path,
        model=model,
        stream=stream,
        max_output_tokens=0 if endpoint == EMBEDDINGS else max_output,
        n=max(n or 1, 1),
        # Conservative upper bound: no tokenizer produces fewer than 1 token per 3 bytes
        # of JSON-escaped English text often enough to matter; settle corrects it.
        input_tokens_estimate=math.ceil(raw_size / 3),
        body_bytes=raw_size,
        prompt_hash=prompt_hash(endpoint, body),
        retry_count=retry_count,
    )

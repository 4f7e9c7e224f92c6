"""Step 2 of the pipeline: a bounded body read, one JSON parse, and the request facts.

Every client mistake here is a 4xx in the OpenAI error shape naming the problem:
413 for oversize bodies (checked against Content-Length before reading, and while
reading for chunked bodies), 408 for a body that takes longer than
`limits.body_timeout_seconds` to arrive (a client trickling bytes holds a connection
and a task; the deadline is for the whole body, so a byte every few seconds cannot
keep it alive), 400 for broken framing (chunked encoding, a short body), non-UTF-8
bytes, invalid JSON, a body that is not an object, or a missing/mistyped `model`.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from agentctl import codec
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


async def read_body(request: web.Request, limit: int, timeout: float | None = None) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                chunk = await request.content.read(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise GatewayError(
            408,
            "request_timeout",
            f"the request body did not arrive within {timeout:g} s "
            "(limits.body_timeout_seconds); send it faster or in a smaller request",
        ) from None
    except RequestPayloadError as exc:
        raise GatewayError(
            400, "invalid_body", f"the request body is malformed: {exc.__cause__ or exc}"
        ) from None
    return b"".join(chunks)


def parse_body(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise GatewayError(400, "invalid_json", "request body is empty; send a JSON object")
    body = _fast_parse(raw)
    if isinstance(body, dict):
        return body
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
    except RecursionError:
        raise GatewayError(400, "invalid_json", "request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise GatewayError(400, "invalid_json", "request body must be a JSON object")
    return body


def _fast_parse(raw: bytes) -> Any:
    """orjson's parse when it agrees with `json` (agentctl.codec); None to take the slow
    path, which produces every error message."""
    if codec.LONG_NUMBER.search(raw) is not None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


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
        prompt_hash=_prompt_hash(endpoint, body),
        retry_count=retry_count,
    )


def _prompt_hash(endpoint: str, body: dict[str, Any]) -> str:
    try:
        return prompt_hash(endpoint, body)
    except RecursionError:  # json.loads took it; the recursive hash ran out of stack
        raise GatewayError(400, "invalid_json", "request body is nested too deeply") from None

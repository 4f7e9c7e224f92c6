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
    content = request.content
    if content.is_eof() and content.exception() is None:
        # The whole body is buffered already (a small request arrives with its headers):
        # nothing can wait, so no deadline needs arming.
        whole = content.read_nowait(-1)
        if len(whole) > limit:
            raise _too_large(limit)
        return whole
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
    except ConnectionResetError:  # nobody is left to answer; nginx's 499, for the audit
        raise GatewayError(
            499, "client_closed_request", "the client closed the connection mid-body"
        ) from None
    return b"".join(chunks)


# Fields policy and metering read. A duplicate of one could be read one way here and the
# other way upstream (`json` keeps the last, other parsers the first): an allowlist or a
# reservation bypass. A cheap byte count decides whether the full check must run.
_GOVERNED = tuple(
    f'"{k}"'.encode()
    for k in ("model", "max_tokens", "max_completion_tokens", "max_output_tokens", "n",
              "stream", "stream_options", "service_tier")
)  # fmt: skip


def _refuse_duplicates(raw: bytes) -> None:
    if not any(raw.count(key) > 1 for key in _GOVERNED):
        return

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                raise GatewayError(
                    400,
                    "duplicate_key",
                    f"the request body has the key {key!r} twice in one object; send it once",
                    param=key,
                )
            seen.add(key)
        return dict(items)

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except RecursionError:
        raise GatewayError(400, "invalid_json", "request body is nested too deeply") from None


def parse_body(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise GatewayError(400, "invalid_json", "request body is empty; send a JSON object")
    body = _fast_parse(raw)
    if isinstance(body, dict):
        _refuse_duplicates(raw)
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
        body = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        reason = str(exc)
        if "int_max_str_digits" in reason:  # the interpreter's own advice is not the client's
            reason = "an integer has more than 4,300 digits"
        raise GatewayError(
            400, "invalid_json", f"request body is not valid JSON: {reason}"
        ) from None
    except RecursionError:
        raise GatewayError(400, "invalid_json", "request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise GatewayError(400, "invalid_json", "request body must be a JSON object")
    _refuse_duplicates(raw)
    return body


def _no_constant(name: str) -> Any:
    # `json` reads NaN and Infinity; JSON has no such values and providers refuse them.
    raise ValueError(f"{name} is not a JSON value")


def _fast_parse(raw: bytes) -> Any:
    """orjson's parse when it agrees with `json` (agentctl.codec); None to take the slow
    path, which produces every error message."""
    if codec.has_long_number(raw):
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


# Provider model ids are short (fine-tuned ones ~60 characters, Azure deployments 64);
# a longer name or a control character is a client bug, and it would reach logs and
# the audit as it came.
MAX_MODEL_CHARS = 256
MAX_INT_FIELD = 2**31 - 1  # max_tokens, n, best_of: providers' own int32 limit


def _int_field(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise GatewayError(
            400, "invalid_value", f"'{name}' must be a non-negative integer", param=name
        )
    if value > MAX_INT_FIELD:  # no provider takes more; and the reservation must fit int64
        raise GatewayError(
            400, "invalid_value", f"'{name}' must be at most {MAX_INT_FIELD}", param=name
        )
    return value


def extract_facts(
    body: dict[str, Any],
    raw_size: int,
    endpoint: str,
    path: str,
    retry_count: int = 0,
    *,
    input_tokens_bound: int | None = None,
) -> RequestFacts:
    """`input_tokens_bound`: `input_bound(raw)` (the body's length when not given)."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise GatewayError(
            400,
            "missing_model" if model is None else "invalid_value",
            "'model' is required and must be a non-empty string",
            param="model",
        )
    if len(model) > MAX_MODEL_CHARS or not model.isprintable():
        raise GatewayError(
            400,
            "invalid_value",
            f"'model' must be at most {MAX_MODEL_CHARS} printable characters "
            "(no control characters)",
            param="model",
        )
    stream = body.get("stream")
    if stream is None:  # "boolean or null" in the OpenAI API
        stream = False
    if not isinstance(stream, bool):
        raise GatewayError(400, "invalid_value", "'stream' must be true or false", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):  # else usage injection hid it
        raise GatewayError(
            400, "invalid_value", "'stream_options' must be an object", param="stream_options"
        )
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
        # A likely count (about 3 bytes of JSON per token in English), for usage when the
        # upstream reports none; budgets reserve the bound, which settle then corrects.
        input_tokens_estimate=math.ceil(raw_size / 3),
        input_tokens_bound=raw_size if input_tokens_bound is None else input_tokens_bound,
        body_bytes=raw_size,
        prompt_hash=_prompt_hash(endpoint, body),
        retry_count=retry_count,
    )


# Media parts cost tokens by their size in pixels or seconds, not by the bytes of their
# reference: a 30-byte image URL can cost ~1,500 tokens (gpt-4o, high detail) and more on
# newer models. Each part is reserved at this; base64 media is bounded by its bytes anyway.
MEDIA_TOKENS = 6_000
_MEDIA_MARKERS = (b'"image_url"', b'"input_image"', b'"image"', b'"input_file"', b'"document"')


def input_bound(raw: bytes) -> int:
    """Tokens the request's input cannot exceed. BPE tokenizers never make a token of less
    than one byte, and the JSON around the text (quotes, keys, message wrappers) is longer
    than the per-message overhead, so the body's length bounds text, token arrays and
    base64 media; media referenced by URL adds `MEDIA_TOKENS` per part."""
    media = (
        sum(raw.count(marker) for marker in _MEDIA_MARKERS)
        if b"image" in raw or (b'"input_file"' in raw or b'"document"' in raw)
        else 0
    )
    return len(raw) + MEDIA_TOKENS * media


def _prompt_hash(endpoint: str, body: dict[str, Any]) -> str:
    try:
        return prompt_hash(endpoint, body)
    except RecursionError:  # json.loads took it; the recursive hash ran out of stack
        raise GatewayError(400, "invalid_json", "request body is nested too deeply") from None

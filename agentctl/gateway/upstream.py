"""Steps 5-6: forward to the upstream and relay its answer, metering as it passes.

Header policy (named sets below): hop-by-hop headers never cross; the client's
credentials never reach the upstream (the provider key from config replaces them);
the identity header is forwarded unchanged unless `identity.forward_header` is off.
aiohttp decompresses upstream bodies, so `Content-Encoding`/`Content-Length` are
dropped on the way back. Streams are relayed event by event as they arrive.

Fallback (`forward`'s loop, slots from `attempts.Attempts`): until the client has a
byte, a connect error, a timeout, a 5xx or a 429 moves the request to the next member
of its pool (per the pool's `fallback_on` and `max_attempts`). JSON bodies are read
whole before the client sees anything, and a stream's first chunk is read before the
client gets its headers, so a stream that dies before its first event falls back too.
When no fallback is left, the last failure reaches the client: OpenAI-shaped 502
(`upstream_unavailable`, connection refused/reset) or 504 (`upstream_timeout`), or
the upstream's own error status passed through with its body and retry headers,
marked `x-agentctl-upstream-status` so nobody mistakes it for the gateway's own.
A failure mid-stream cannot change the status any more and is never retried: the
client gets an SSE `error` event (the OpenAI SDKs raise `APIError` on it), the stream
ends, and the attempt is audited `after_first_byte`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from agentctl import codec
from agentctl.errors import GatewayError
from agentctl.facts import CHAT, COMPLETIONS, MESSAGES, RequestFacts
from agentctl.gateway.attempts import Attempts
from agentctl.gateway.call import Call
from agentctl.gateway.metering import StreamMeter, estimate
from agentctl.gateway.routing import Route
from agentctl.tracing import inject_context
from agentctl.usage import Usage, from_body

log = logging.getLogger("agentctl.upstream")

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
REQUEST_DROP = HOP_BY_HOP | {
    "host",
    "authorization",
    "x-api-key",
    "content-length",
    "accept-encoding",
    "cookie",
    "x-forwarded-for",
    "forwarded",
}
RESPONSE_DROP = HOP_BY_HOP | {
    "content-length",
    "content-encoding",
    "set-cookie",
    "x-request-id",
    "server",
    "date",
}


_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")  # control characters but tab


def _check_header_value(name: str, value: str) -> None:
    # isprintable(): no control character at all (the common case, one C pass); else
    # the regex decides (a tab and non-ASCII text are allowed).
    if not value.isprintable() and _CONTROL.search(value) is not None:
        raise GatewayError(
            400,
            "invalid_header",
            f"header {name!r} contains a control character; remove it",
            param=name,
        )


def upstream_headers(
    client: CIMultiDictProxy[str], route: Route, secret: str | None, forward_identity: bool
) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in client.items():
        lower = name.lower()
        if lower in REQUEST_DROP:
            continue
        if not forward_identity and lower == "x-agent-identity":
            continue
        _check_header_value(name, value)
        out.add(name, value)
    if secret:
        if route.upstream.auth == "x-api-key":
            out["x-api-key"] = secret
        else:
            out["Authorization"] = f"Bearer {secret}"
    inject_context(out)  # our span's traceparent, only when tracing is on
    return out


def response_headers(upstream: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in upstream.items():
        lower = name.lower()
        if lower in RESPONSE_DROP:
            if lower == "x-request-id":
                out["x-upstream-request-id"] = value
            continue
        out.add(name, value)
    return out


def needs_usage_injection(facts: RequestFacts, body: dict[str, Any], route: Route) -> bool:
    if not facts.stream or facts.endpoint not in (CHAT, COMPLETIONS):
        return False
    if not route.upstream.inject_stream_usage:
        return False
    options = body.get("stream_options")
    return not (isinstance(options, dict) and options.get("include_usage") is True)


def inject_usage(body: dict[str, Any]) -> bytes:
    options = body.get("stream_options")
    merged = dict(options) if isinstance(options, dict) else {}
    merged["include_usage"] = True
    return json.dumps({**body, "stream_options": merged}).encode()


class _StreamTooLarge(Exception):
    """The upstream streamed more than `limits.max_response_bytes`."""


def _sse_error(message: str, code: str, endpoint: str) -> bytes:
    """The event that tells a streaming client its stream failed: OpenAI's `data:` error
    object, or on /v1/messages Anthropic's `event: error` (its SDK ignores anything else)."""
    error = {"message": message, "type": "api_error", "param": None, "code": code}
    if endpoint == MESSAGES:
        return (
            b"event: error\ndata: "
            + json.dumps({"type": "error", "error": error}).encode()
            + b"\n\n"
        )
    return b"data: " + json.dumps({"error": error}).encode() + b"\n\n"


@dataclass(frozen=True, slots=True)
class Outbound:
    """What one attempt sends: the body (model renamed, usage injected) and headers."""

    payload: bytes
    headers: CIMultiDict[str]
    hide_usage_chunk: bool


def outbound(
    route: Route,
    raw: bytes,
    body: dict[str, Any],
    facts: RequestFacts,
    client: CIMultiDictProxy[str],
    secret: str | None,
    forward_identity: bool,
) -> Outbound:
    hide = needs_usage_injection(facts, body, route)
    payload = raw
    if route.model != facts.model or hide:
        changed = {**body, "model": route.model} if route.model != facts.model else body
        payload = inject_usage(changed) if hide else json.dumps(changed).encode()
    return Outbound(payload, upstream_headers(client, route, secret, forward_identity), hide)


def failure_kind(status: int) -> str | None:
    """The `fallback_on` kind of an upstream answer, None when it is not a failure."""
    if status == 429:
        return "429"
    return "5xx" if status >= 500 else None


class _Failed(Exception):
    """An attempt failed before the client saw a byte: `kind` for fallback, `error` for it."""

    def __init__(self, kind: str, label: str, error: GatewayError) -> None:
        super().__init__(error.message)
        self.kind, self.label, self.error = kind, label, error


async def forward(
    *,
    session: aiohttp.ClientSession,
    request: web.Request,
    call: Call,
    attempts: Attempts,
    prepare: Callable[[Route], Outbound],
    facts: RequestFacts,
    max_response_bytes: int,
    own_headers: dict[str, str],
    on_final: Callable[[], None],
) -> web.StreamResponse:
    """Send to the upstream `attempts` holds; fall back while the client has no byte.

    `on_final` journals the audit record; streams call it before the last event."""
    route = attempts.route
    assert route is not None
    while True:
        out = prepare(route)
        upstream: aiohttp.ClientResponse | None = None
        chunks: AsyncIterator[bytes] | None = None
        first = raw = b""
        try:
            upstream = await _send(session, request, route, out)
            status = upstream.status
            attempts.attempt["status"] = status
            ctype = upstream.headers.get("Content-Type", "")
            streaming = status == 200 and ctype.startswith("text/event-stream")
            if streaming:
                chunks = upstream.content.iter_any().__aiter__()
                first = await _first_chunk(chunks, route)
            else:
                raw = await _read_body(upstream, max_response_bytes)
        except _Failed as failed:
            if upstream is not None:
                upstream.release()
            attempts.attempt["error"] = failed.label
            following = await attempts.fall_back(failed.kind)
            if following is None:
                raise failed.error from None
            route = following
            continue
        assert upstream is not None
        try:
            if chunks is not None:
                call.status = status
                response = await _relay_stream(
                    request,
                    call,
                    upstream,
                    chunks,
                    first,
                    facts,
                    out,
                    own_headers,
                    on_final,
                    max_response_bytes,
                )
                _judge_stream(call, attempts)
                return response
            kind = failure_kind(status)
            if kind is not None and attempts.can_fall_back(kind):
                upstream.release()
                following = await attempts.fall_back(kind)
                if following is not None:
                    route = following
                    continue
            attempts.verdict = kind is None
            return _answer(call, status, upstream.headers, raw, facts, own_headers)
        finally:
            upstream.release()


async def _send(
    session: aiohttp.ClientSession, request: web.Request, route: Route, out: Outbound
) -> aiohttp.ClientResponse:
    timeouts = route.upstream.timeouts
    client_timeout = _client_timeout(timeouts.total, timeouts.connect, timeouts.idle)
    try:
        async with asyncio.timeout(timeouts.first_byte):
            return await session.request(
                request.method,
                route.url,
                data=out.payload,
                headers=out.headers,
                timeout=client_timeout,
                allow_redirects=False,
            )
    except TimeoutError:
        raise _Failed(
            "timeout",
            "timeout",
            GatewayError(
                504,
                "upstream_timeout",
                f"upstream {route.upstream.name!r} did not answer within {timeouts.first_byte:g}s",
            ),
        ) from None
    except aiohttp.ClientError as exc:
        raise _Failed(
            "connect",
            type(exc).__name__,
            GatewayError(
                502,
                "upstream_unavailable",
                f"upstream {route.upstream.name!r} is unreachable ({type(exc).__name__})",
            ),
        ) from None


@functools.lru_cache(maxsize=64)
def _client_timeout(total: float, connect: float, idle: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total, sock_connect=connect, sock_read=idle)


async def _first_chunk(chunks: AsyncIterator[bytes], route: Route) -> bytes:
    """A stream's first chunk, read before the client gets a header: a stream that
    breaks before it can still fall back."""
    try:
        return await anext(chunks)
    except StopAsyncIteration:
        return b""
    except TimeoutError:
        raise _Failed(
            "timeout",
            "stream_timeout",
            GatewayError(
                504, "upstream_timeout", "upstream stream went idle before its first event"
            ),
        ) from None
    except aiohttp.ClientError as exc:
        raise _Failed(
            "connect",
            type(exc).__name__,
            GatewayError(
                502,
                "upstream_unavailable",
                f"upstream {route.upstream.name!r} failed before its first event "
                f"({type(exc).__name__})",
            ),
        ) from None


async def _read_body(upstream: aiohttp.ClientResponse, max_response_bytes: int) -> bytes:
    too_large = GatewayError(
        502, "upstream_response_too_large", "upstream response exceeds the size cap"
    )
    try:
        length = upstream.content_length
        if length is not None and length > max_response_bytes:
            raise too_large
        raw = await upstream.content.read(max_response_bytes + 1)
        if len(raw) > max_response_bytes:
            raise too_large
        # read(n) may return early; drain the rest up to the cap.
        while not upstream.content.at_eof():
            more = await upstream.content.read(max_response_bytes + 1 - len(raw))
            if not more:
                break
            raw += more
            if len(raw) > max_response_bytes:
                raise too_large
    except TimeoutError:
        raise _Failed(
            "timeout",
            "body_timeout",
            GatewayError(504, "upstream_timeout", "upstream stopped sending its body"),
        ) from None
    except aiohttp.ClientError as exc:
        raise _Failed(
            "connect",
            type(exc).__name__,
            GatewayError(
                502, "upstream_unavailable", f"upstream body failed ({type(exc).__name__})"
            ),
        ) from None
    return raw


def _answer(
    call: Call,
    status: int,
    upstream_headers: CIMultiDictProxy[str],
    raw: bytes,
    facts: RequestFacts,
    own_headers: dict[str, str],
) -> web.Response:
    call.status = status
    call.mark_first_byte()
    if status == 401:
        # The provider refused *our* key: a gateway configuration problem, not the client's.
        # Its message may quote a masked fragment of the key, so nothing of it is relayed,
        # audited or logged.
        call.outcome = "upstream_error"
        upstream = call.upstream or "the upstream"
        log.warning("upstream %s refused the gateway's provider key (HTTP 401)", upstream)
        raise GatewayError(
            502,
            "upstream_auth_failed",
            f"upstream {upstream!r} refused the gateway's provider credential (HTTP 401); "
            "the gateway operator must fix `upstreams[].api_key` in agentctl.yaml",
            headers={"x-agentctl-upstream-status": "401"},
        )
    if call.capture is not None:  # opt-in body storage (audit.bodies)
        call.capture.take_response(raw)
    headers = response_headers(upstream_headers)
    parsed: Any = None
    if raw[:1] in (b"{", b"[") or raw.lstrip()[:1] in (b"{", b"["):
        try:
            parsed = codec.loads(raw)
        except ValueError:
            parsed = None
    if status < 400:
        usage = from_body(facts.endpoint, parsed) if parsed is not None else None
        if usage is None:
            usage = estimate(facts.input_tokens_estimate, 0)
            call.message = "upstream response carried no usage; estimated"
        call.usage = usage
    else:
        call.outcome = "upstream_error"
        headers["x-agentctl-upstream-status"] = str(status)
        if not isinstance(parsed, dict) or "error" not in parsed:
            text = raw[:200].decode("utf-8", "replace")
            raise GatewayError(
                502,
                "upstream_error",
                f"upstream answered {status} without an error object: {text!r}",
            )
        err = parsed.get("error")
        if isinstance(err, dict):
            call.message = str(err.get("message", ""))[:500]
    headers.update(own_headers)
    return web.Response(status=status, body=raw, headers=headers)


def _judge_stream(call: Call, attempts: Attempts) -> None:
    """A relayed stream's health verdict; a break after the first byte is audited on
    its attempt and never retried (the client already has part of an answer)."""
    if call.outcome in ("upstream_error", "timeout"):
        attempts.verdict = False
        attempts.attempt["error"] = (
            "stream_timeout" if call.outcome == "timeout" else "stream_reset"
        )
        attempts.attempt["after_first_byte"] = True
    elif call.outcome != "disconnected":
        attempts.verdict = True


async def _relay_stream(
    request: web.Request,
    call: Call,
    upstream: aiohttp.ClientResponse,
    chunks: AsyncIterator[bytes],
    first: bytes,
    facts: RequestFacts,
    out_bound: Outbound,
    own_headers: dict[str, str],
    on_final: Callable[[], None],
    max_bytes: int,
) -> web.StreamResponse:
    headers = response_headers(upstream.headers)
    headers.update(own_headers)
    out = web.StreamResponse(status=200, headers=headers)
    meter = StreamMeter(facts.endpoint, hide_usage_chunk=out_bound.hide_usage_chunk)
    try:
        await out.prepare(request)
        call.answered = True
        final = False
        capture = call.capture  # opt-in body storage (audit.bodies)
        chunk = first
        received = 0
        while True:  # the first chunk, then the rest (no wrapping generator per chunk)
            received += len(chunk)
            if received > max_bytes:
                raise _StreamTooLarge
            data = meter.feed(chunk) if chunk else b""
            if capture is not None and data:
                capture.take_stream(data)
            if data:
                call.mark_first_byte()  # before the record below, which carries it
            if meter.terminal and not final:
                final = True
                call.usage = _metered(meter, facts, call)
                on_final()  # journaled before the client has the last event
            if data:
                await out.write(data)
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
        tail = meter.finish()
        if not final:
            call.usage = _metered(meter, facts, call)
            on_final()
        if tail:
            await out.write(tail)
        await out.write_eof()
    except asyncio.CancelledError:
        # The client hung up (its handler is cancelled), or the drain ran out: record()
        # tells the second from the first by the client's connection.
        if request.transport is None or request.transport.is_closing():
            call.outcome = "disconnected"
            call.message = "client disconnected mid-stream"
        raise
    except (ConnectionError, aiohttp.ClientConnectionResetError) as exc:
        # The client went away (writes fail) or the upstream reset: find out which.
        if request.transport is None or request.transport.is_closing():
            call.outcome = "disconnected"
            call.message = "client disconnected mid-stream"
        else:
            call.outcome = "upstream_error"
            call.message = f"upstream reset mid-stream ({type(exc).__name__})"
            await _try_write(out, _sse_error(call.message, "upstream_reset", facts.endpoint))
    except _StreamTooLarge:  # the upstream connection is closed, not reused (release)
        call.outcome = "upstream_error"
        call.message = (
            f"upstream stream exceeded limits.max_response_bytes ({max_bytes} bytes); cut off"
        )
        await _try_write(
            out, _sse_error(call.message, "upstream_response_too_large", facts.endpoint)
        )
    except TimeoutError:
        call.outcome = "timeout"
        call.message = "upstream stream went idle past the timeout"
        await _try_write(out, _sse_error(call.message, "upstream_timeout", facts.endpoint))
    except aiohttp.ClientError as exc:
        call.outcome = "upstream_error"
        call.message = f"upstream failed mid-stream ({type(exc).__name__})"
        await _try_write(out, _sse_error(call.message, "upstream_reset", facts.endpoint))
    finally:
        if call.usage is None:
            call.usage = _metered(meter, facts, call)
    return out


def _metered(meter: StreamMeter, facts: RequestFacts, call: Call) -> Usage:
    usage = meter.usage
    if usage is not None and not meter.terminal and facts.endpoint == MESSAGES:
        # Anthropic counts output as it goes (message_start says 1): cut short, the
        # count is not final. Exact input, output at least one token per delta seen.
        if call.message is None:
            call.message = "stream ended before message_stop; output estimated"
        return replace(
            usage,
            completion_tokens=max(usage.completion_tokens, meter.content_events),
            source="estimated",
        )
    if usage is not None:
        return usage
    if call.message is None:
        call.message = "stream carried no usage; estimated"
    return estimate(facts.input_tokens_estimate, meter.content_events)


async def _try_write(out: web.StreamResponse, data: bytes) -> None:
    try:
        await out.write(data)
        await out.write_eof()
    except (ConnectionResetError, aiohttp.ClientConnectionResetError, RuntimeError):
        pass

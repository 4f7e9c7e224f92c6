"""Steps 5-6: forward to the upstream and relay its answer, metering as it passes.

Header policy (named sets below): hop-by-hop headers never cross; the client's
credentials never reach the upstream (the provider key from config replaces them);
the identity header is forwarded unchanged unless `identity.forward_header` is off.
aiohttp decompresses upstream bodies, so `Content-Encoding`/`Content-Length` are
dropped on the way back. Streams are relayed event by event as they arrive.

Failures before the first byte reaches the client become OpenAI-shaped 502
(`upstream_unavailable`, connection refused/reset) or 504 (`upstream_timeout`).
Upstream error statuses are passed through with their body and retry headers, and
marked `x-agentctl-upstream-status` so nobody mistakes them for the gateway's own.
A failure mid-stream cannot change the status any more: the client gets an SSE
`error` event (the OpenAI SDKs raise `APIError` on it) and the stream ends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from agentctl.errors import GatewayError
from agentctl.facts import CHAT, COMPLETIONS, RequestFacts
from agentctl.gateway.call import Call
from agentctl.gateway.metering import StreamMeter, estimate
from agentctl.gateway.routing import Route
from agentctl.tracing import inject_context
from agentctl.usage import Usage, from_body

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


def _check_header_value(name: str, value: str) -> None:
    for ch in value:
        if (ord(ch) < 32 and ch != "\t") or ord(ch) == 127:
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


def _sse_error(message: str, code: str) -> bytes:
    payload = {"error": {"message": message, "type": "api_error", "param": None, "code": code}}
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


async def forward(
    *,
    session: aiohttp.ClientSession,
    request: web.Request,
    call: Call,
    route: Route,
    payload: bytes,
    headers: CIMultiDict[str],
    facts: RequestFacts,
    hide_usage_chunk: bool,
    max_response_bytes: int,
    own_headers: dict[str, str],
    on_final: Callable[[], None],
) -> web.StreamResponse:
    """`on_final` journals the audit record; streams call it before the last event."""
    timeouts = route.upstream.timeouts
    client_timeout = aiohttp.ClientTimeout(
        total=timeouts.total, sock_connect=timeouts.connect, sock_read=timeouts.idle
    )
    attempt: dict[str, Any] = {"upstream": route.upstream.name}
    call.attempts.append(attempt)
    try:
        async with asyncio.timeout(timeouts.first_byte):
            upstream = await session.request(
                request.method,
                route.url,
                data=payload,
                headers=headers,
                timeout=client_timeout,
                allow_redirects=False,
            )
    except TimeoutError:
        attempt["error"] = "timeout"
        raise GatewayError(
            504,
            "upstream_timeout",
            f"upstream {route.upstream.name!r} did not answer within {timeouts.first_byte:g}s",
        ) from None
    except aiohttp.ClientError as exc:
        attempt["error"] = type(exc).__name__
        raise GatewayError(
            502,
            "upstream_unavailable",
            f"upstream {route.upstream.name!r} is unreachable ({type(exc).__name__})",
        ) from None
    attempt["status"] = upstream.status
    try:
        call.status = upstream.status
        ctype = upstream.headers.get("Content-Type", "")
        if upstream.status == 200 and ctype.startswith("text/event-stream"):
            return await _relay_stream(
                request, call, upstream, facts, hide_usage_chunk, own_headers, on_final
            )
        return await _relay_body(call, upstream, facts, max_response_bytes, own_headers)
    finally:
        upstream.release()


async def _relay_body(
    call: Call,
    upstream: aiohttp.ClientResponse,
    facts: RequestFacts,
    max_response_bytes: int,
    own_headers: dict[str, str],
) -> web.Response:
    try:
        length = upstream.content_length
        if length is not None and length > max_response_bytes:
            raise GatewayError(
                502, "upstream_response_too_large", "upstream response exceeds the size cap"
            )
        raw = await upstream.content.read(max_response_bytes + 1)
        if len(raw) > max_response_bytes:
            raise GatewayError(
                502, "upstream_response_too_large", "upstream response exceeds the size cap"
            )
        # read(n) may return early; drain the rest up to the cap.
        while not upstream.content.at_eof():
            more = await upstream.content.read(max_response_bytes + 1 - len(raw))
            if not more:
                break
            raw += more
            if len(raw) > max_response_bytes:
                raise GatewayError(
                    502, "upstream_response_too_large", "upstream response exceeds the size cap"
                )
    except TimeoutError:
        raise GatewayError(504, "upstream_timeout", "upstream stopped sending its body") from None
    except aiohttp.ClientError as exc:
        raise GatewayError(
            502, "upstream_unavailable", f"upstream body failed ({type(exc).__name__})"
        ) from None
    call.mark_first_byte()
    headers = response_headers(upstream.headers)
    status = upstream.status
    parsed: Any = None
    if raw[:1] in (b"{", b"[") or raw.lstrip()[:1] in (b"{", b"["):
        try:
            parsed = json.loads(raw)
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


async def _relay_stream(
    request: web.Request,
    call: Call,
    upstream: aiohttp.ClientResponse,
    facts: RequestFacts,
    hide_usage_chunk: bool,
    own_headers: dict[str, str],
    on_final: Callable[[], None],
) -> web.StreamResponse:
    headers = response_headers(upstream.headers)
    headers.update(own_headers)
    out = web.StreamResponse(status=200, headers=headers)
    meter = StreamMeter(facts.endpoint, hide_usage_chunk=hide_usage_chunk)
    try:
        await out.prepare(request)
        final = False
        async for chunk in upstream.content.iter_any():
            data = meter.feed(chunk)
            if meter.terminal and not final:
                final = True
                call.usage = _metered(meter, facts, call)
                on_final()  # journaled before the client has the last event
            if data:
                call.mark_first_byte()
                await out.write(data)
        tail = meter.finish()
        if not final:
            call.usage = _metered(meter, facts, call)
            on_final()
        if tail:
            await out.write(tail)
        await out.write_eof()
    except (ConnectionResetError, aiohttp.ClientConnectionResetError) as exc:
        # The client went away (writes fail) or the upstream reset: find out which.
        if request.transport is None or request.transport.is_closing():
            call.outcome = "disconnected"
            call.message = "client disconnected mid-stream"
        else:
            call.outcome = "upstream_error"
            call.message = f"upstream reset mid-stream ({type(exc).__name__})"
            await _try_write(out, _sse_error(call.message, "upstream_reset"))
    except TimeoutError:
        call.outcome = "timeout"
        call.message = "upstream stream went idle past the timeout"
        await _try_write(out, _sse_error(call.message, "upstream_timeout"))
    except aiohttp.ClientError as exc:
        call.outcome = "upstream_error"
        call.message = f"upstream failed mid-stream ({type(exc).__name__})"
        await _try_write(out, _sse_error(call.message, "upstream_reset"))
    finally:
        if call.usage is None:
            call.usage = _metered(meter, facts, call)
    return out


def _metered(meter: StreamMeter, facts: RequestFacts, call: Call) -> Usage:
    if meter.usage is not None:
        return meter.usage
    if call.message is None:
        call.message = "stream carried no usage; estimated"
    return estimate(facts.input_tokens_estimate, meter.content_events)


async def _try_write(out: web.StreamResponse, data: bytes) -> None:
    try:
        await out.write(data)
        await out.write_eof()
    except (ConnectionResetError, aiohttp.ClientConnectionResetError, RuntimeError):
        pass

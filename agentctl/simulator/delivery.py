"""Putting a reply on the wire, and the transport-level faults applied while doing so.

The wire-format modules (`openai`, `anthropic`) build a `JsonReply` or a `StreamReply`
without touching the network; `deliver` writes it and applies the faults that live at
the byte level: padding to a size, malformed bodies/events, gzip, delays between events
and a real connection reset (SO_LINGER 0 then abort, so the client sees an RST).

A stream without delays or resets is written in one piece (headers included, one
syscall): still chunked SSE on the wire, and benchmarks measure the gateway, not this.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import struct
import zlib
from dataclasses import dataclass

from aiohttp import web

from agentctl.simulator.behaviour import Behaviour

JSON_TYPE = "application/json"
SSE_TYPE = "text/event-stream; charset=utf-8"
PADDING_FIELD = "sim_padding"
_PAD_OPEN = b',"' + PADDING_FIELD.encode() + b'":"'
_PAD_LINE = 16 * 1024


@dataclass(slots=True)
class JsonReply:
    body: bytes
    headers: dict[str, str]
    status: int = 200


@dataclass(slots=True)
class StreamReply:
    """SSE events, each complete with its trailing blank line."""

    events: list[str]
    headers: dict[str, str]


@dataclass(slots=True)
class Exchange:
    """What every reply to one request shares."""

    token: str  # unique per request: request ids and object ids derive from it
    created: int
    headers: dict[str, str]
    behaviour: Behaviour


def event(name: str, data: str) -> str:
    return f"event: {name}\ndata: {data}\n\n"


def data_event(data: str) -> str:
    return f"data: {data}\n\n"


def pad_json(body: bytes, size: int) -> bytes:
    """Grow a JSON object to `size` bytes with an extra string field clients ignore."""
    missing = size - len(body) - len(_PAD_OPEN) - 1
    if size <= len(body) or not body.endswith(b"}"):
        return body
    return body[:-1] + _PAD_OPEN + b"x" * max(missing, 0) + b'"}'


def pad_events(events: list[str], size: int) -> list[str]:
    """Insert SSE comment lines before the last event until the stream has `size` bytes."""
    missing = size - sum(len(e) for e in events)
    padding: list[str] = []
    while missing > 0:
        line = ": " + "x" * max(min(missing - 4, _PAD_LINE), 0) + "\n\n"
        padding.append(line)
        missing -= len(line)
    return events[:-1] + padding + events[-1:]


def break_event(text: str) -> str:
    """Cut an event's JSON in half, keeping the SSE framing around it intact."""
    start = text.find("data: ") + len("data: ")
    payload = text[start:].rstrip("\n")
    return text[:start] + payload[: len(payload) // 2] + "\n\n"


async def reset(request: web.BaseRequest) -> None:
    """Send what is buffered, then abort the connection with a TCP RST."""
    transport = request.transport
    if transport is None:
        return
    for _ in range(1000):
        if not transport.get_write_buffer_size():
            break
        await asyncio.sleep(0.001)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def deliver(
    request: web.BaseRequest, reply: JsonReply | StreamReply, behaviour: Behaviour
) -> tuple[web.StreamResponse, bool]:
    """Write `reply`; the flag says whether the client got all of it."""
    try:
        if isinstance(reply, JsonReply):
            return await _deliver_json(request, reply, behaviour)
        return await _deliver_stream(request, reply, behaviour)
    except ConnectionError:
        return web.Response(status=499), False


async def _deliver_json(
    request: web.BaseRequest, reply: JsonReply, behaviour: Behaviour
) -> tuple[web.StreamResponse, bool]:
    body = reply.body
    headers = reply.headers
    headers["Content-Type"] = JSON_TYPE
    if reply.status == 200:
        if behaviour.response_bytes:
            body = pad_json(body, behaviour.response_bytes)
        if behaviour.malformed:
            body = body[: len(body) // 2]
    if behaviour.gzip:
        body = gzip.compress(body, compresslevel=1)
        headers["Content-Encoding"] = "gzip"
    cut = behaviour.reset_after
    if cut is None:
        response = web.Response(body=body, status=reply.status, headers=headers)
        await response.prepare(request)
        await response.write_eof()
        return response, True
    partial = web.StreamResponse(status=reply.status, headers=headers)
    if cut > 0:
        partial.content_length = len(body)
        await partial.prepare(request)
        await partial.write(body[: min(cut, len(body) - 1)])
    await reset(request)
    return partial, False


async def _deliver_stream(
    request: web.BaseRequest, reply: StreamReply, behaviour: Behaviour
) -> tuple[web.StreamResponse, bool]:
    events = reply.events
    if behaviour.malformed:
        events[min(1, len(events) - 1)] = break_event(events[min(1, len(events) - 1)])
    if behaviour.response_bytes:
        events = pad_events(events, behaviour.response_bytes)
    headers = reply.headers
    headers["Content-Type"] = SSE_TYPE
    headers["Cache-Control"] = "no-cache"
    cut = behaviour.reset_after
    delay = behaviour.chunk_delay_ms / 1000
    if behaviour.gzip:
        headers["Content-Encoding"] = "gzip"
    if cut is None and not delay:
        # One write for headers and every event: still chunked SSE, one syscall.
        body = "".join(events).encode()
        if behaviour.gzip:
            body = gzip.compress(body, compresslevel=1)
        whole = web.Response(body=body, headers=headers)
        whole.enable_chunked_encoding()
        await whole.prepare(request)
        await whole.write_eof()
        return whole, True

    compressor = zlib.compressobj(1, zlib.DEFLATED, 31) if behaviour.gzip else None
    response = web.StreamResponse(status=200, headers=headers)
    await response.prepare(request)
    for index, text in enumerate(events):
        if index == cut:
            await reset(request)
            return response, False
        if delay and index:
            await asyncio.sleep(delay)
        data = text.encode()
        if compressor is not None:
            data = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        await response.write(data)
    if cut is not None:
        await reset(request)
        return response, False
    if compressor is not None:
        await response.write(compressor.flush())
    await response.write_eof()
    return response, True

"""Shared assertions and raw clients for the gateway failure-path tests."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.harness import IDENTITY, GatewayHarness

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "tell me three things about the sea"}]
BODY: dict[str, Any] = {"model": "gpt-4o-mini", "messages": MESSAGES}
RAW_BODY = json.dumps(BODY).encode()
HEADERS = {"X-Agent-Identity": IDENTITY, "Content-Type": "application/json"}


def error_of(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert the exact OpenAI error shape and return its inner object."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert list(body) == ["error"]
    err = body["error"]
    assert sorted(err) == ["code", "message", "param", "type"]
    assert err["code"] == code
    assert isinstance(err["message"], str) and err["message"]
    assert resp.headers["x-request-id"].startswith("req_")
    return err


async def post(
    gateway: GatewayHarness, content: bytes = RAW_BODY, **headers: str
) -> httpx.Response:
    merged = {**HEADERS, **headers}
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        return await client.post(CHAT, content=content, headers=merged)


async def ok(gateway: GatewayHarness) -> None:
    """The gateway still serves a valid request."""
    resp = await post(gateway)
    assert resp.status_code == 200, resp.text
    assert resp.json()["object"] == "chat.completion"


async def raw_http(url: str, head: bytes, body: bytes = RAW_BODY) -> tuple[int, bytes, bytes]:
    """Send exact bytes (header lines no client library would produce); (status, head, body)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(
            b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: gateway\r\n"
            b"Content-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n" + head + b"\r\n" + body
        )
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    top, _, rest = data.partition(b"\r\n\r\n")
    return int(top.split(b" ", 2)[1]), top, rest


async def eventually(
    probe: Callable[[], Awaitable[Any]], *, within: float = 3.0, step: float = 0.02
) -> Any:
    """Poll `probe` until it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"condition not met within {within}s"
        await asyncio.sleep(step)

"""Raw-socket clients for hostile-input tests: bytes no HTTP library would send."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

from tests.gateway.support import CHAT, RAW_BODY
from tests.harness import IDENTITY, GatewayHarness

GOOD_HEAD = b"Content-Type: application/json\r\nX-Agent-Identity: " + IDENTITY.encode() + b"\r\n"


class Reply:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        top, _, self.body = raw.partition(b"\r\n\r\n")
        lines = top.split(b"\r\n")
        self.status = int(lines[0].split(b" ", 2)[1]) if lines[0] else 0
        self.headers = {
            k.strip().lower().decode(): v.strip().decode("latin-1")
            for k, _, v in (line.partition(b":") for line in lines[1:])
        }

    def error(self) -> dict[str, Any]:
        """The OpenAI error object, after checking the whole shape."""
        assert self.headers["content-type"].startswith("application/json"), self.raw[:300]
        body = json.loads(self.body)
        if "type" in body:  # /v1/messages: Anthropic's envelope around the same object
            assert body.pop("type") == "error"
        assert list(body) == ["error"]
        assert sorted(body["error"]) == ["code", "message", "param", "type"]
        assert self.headers["x-request-id"].startswith("req_")
        return body["error"]


async def read_reply(reader: asyncio.StreamReader, within: float = 10) -> Reply:
    """One response by its Content-Length, without waiting for the connection to end."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), within)
    length = Reply(head).headers.get("content-length", "0")
    body = await asyncio.wait_for(reader.readexactly(int(length)), within)
    return Reply(head + body)


async def connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    return await asyncio.open_connection(parts.hostname, parts.port)


async def exchange(url: str, data: bytes, *, within: float = 10) -> Reply:
    """Send `data` as is, read until the gateway closes (or `within` passes)."""
    reader, writer = await connect(url)
    try:
        writer.write(data)
        await writer.drain()
        return Reply(await asyncio.wait_for(reader.read(), within))
    finally:
        writer.close()


def request(
    head: bytes = b"", body: bytes = RAW_BODY, *, method: bytes = b"POST", path: bytes = b""
) -> bytes:
    return (
        method + b" " + (path or CHAT.encode()) + b" HTTP/1.1\r\nHost: gateway\r\n"
        b"Connection: close\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n"
        + GOOD_HEAD
        + head
        + b"\r\n"
        + body
    )


async def audited(gateway: GatewayHarness, request_id: str) -> dict[str, Any]:
    rows = [r for r in await gateway.records() if r["request_id"] == request_id]
    assert len(rows) == 1, f"{request_id}: {len(rows)} audit rows"
    return rows[0]

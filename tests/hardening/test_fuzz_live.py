"""A live fuzz run: a few hundred seeded random requests (methods, paths, header lines,
framing, bodies) sent as raw bytes to a real gateway. Whatever arrives: never a 500
from the gateway itself, every error in the OpenAI shape, every answer that the
gateway audits (everything but health, metrics and successful reads) found in the
audit by its `x-request-id`, and the gateway still serving afterwards."""

from __future__ import annotations

import asyncio
import json
import random

from agentctl.config import Limits
from tests.gateway.support import MESSAGES, ok
from tests.hardening.support import Reply, connect
from tests.harness import IDENTITY, GatewayHarness

SEED = 20261204
COUNT = 300
UNAUDITED_OK = ("/healthz", "/metrics", "/v1/models", "/admin/")

METHODS = [b"POST"] * 8 + [b"GET", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"HEAD", b"BREW"]
PATHS = [b"/v1/chat/completions"] * 6 + [
    b"/v1/completions",
    b"/v1/embeddings",
    b"/v1/responses",
    b"/v1/messages",
    b"/v1/models",
    b"/healthz",
    b"/metrics",
    b"/admin/health",
    b"/admin/agents/bot-a",
    b"/v1/../admin/health",
    b"/v1/chat/completions/../../etc/passwd",
    b"//v1/chat/completions",
    b"/v1/chat/completions?model=x&base_url=http://169.254.169.254/",
    b"/v1/%63hat/completions",
    b"/v1/chat/completions%00",
    b"http://evil.example/v1/chat/completions",
    b"*",
    b"/\xff\xfe",
    b"/" + b"a" * 3000,
]
IDENTITIES = [
    *[IDENTITY] * 5,
    "name=bot-b; owner=team-ml; purpose=test; run=r1",
    "name=Bot; owner=o; purpose=test",
    "name=a; owner=b",
    "name=a;; owner=b; purpose=test",
    "",
    "name=" + "x" * 80 + "; owner=o; purpose=test",
    "name=é; owner=o; purpose=test",
]
HEADER_LINES = [
    b"Authorization: Bearer sk-whatever",
    b"Authorization: Bearer agk_deadbeef_notasecret",
    b"Authorization: Basic Zm9vOmJhcg==",
    b"Authorization: Bearer",
    b"x-api-key: agk_x_y",
    b"Content-Type: text/plain",
    b"Content-Type: application/json; charset=latin-1",
    b"Content-Encoding: gzip",
    b"Accept-Encoding: br",
    b"Expect: 100-continue",
    b"Transfer-Encoding: gzip",
    b"Upgrade: websocket",
    b"Connection: Upgrade",
    b"X-Forwarded-For: 1.2.3.4, 127.0.0.1",
    b"Forwarded: for=1.2.3.4",
    b"X-Forwarded-Host: evil.example",
    b"Host: evil.example",
    b"X-Stainless-Retry-Count: 99999999999999999999",
    b"X-Note: caf\xc3\xa9",
    b"X-Note: \xff\xfe\x80",
    b"X-Note: a\x01b",
    b"X-Note: a\x7fb",
    b"X-Note:    ",
    b": no-name",
    b"Bad Header Name: v",
    b"X-Sim-Status: 500",
    b"X-Sim-Status: 429",
    b"X-Long: " + b"v" * 9000,
    b"Content-Length: 5",
    b"Content-Length: -1",
    b"Content-Length: abc",
]


def chat_body(rnd: random.Random) -> bytes:
    body: dict[str, object] = {"model": "gpt-4o-mini", "messages": MESSAGES}
    roll = rnd.random()
    if roll < 0.15:
        body["stream"] = True
    elif roll < 0.25:
        body["stream"] = rnd.choice(["yes", 1, None, [], {}])
    if rnd.random() < 0.2:
        body["max_tokens"] = rnd.choice([-1, 0, 1.5, "9", 10**30, True, None])
    if rnd.random() < 0.15:
        body["model"] = rnd.choice(["", None, 7, ["gpt-4o"], "claude-3-haiku", "x" * 500])
    if rnd.random() < 0.1:
        body["messages"] = rnd.choice([None, "hi", [1, 2], [{"role": None}], {"a": "b"}])
    if rnd.random() < 0.1:
        body["n"] = rnd.choice([0, 2, -5, "two"])
    if rnd.random() < 0.1:
        body["base_url"] = "http://169.254.169.254/latest"
    return json.dumps(body).encode()


def random_body(rnd: random.Random) -> bytes:
    roll = rnd.random()
    if roll < 0.5:
        return chat_body(rnd)
    if roll < 0.6:
        raw = bytearray(chat_body(rnd))
        for _ in range(rnd.randint(1, 5)):
            raw[rnd.randrange(len(raw))] = rnd.randrange(256)
        return bytes(raw)
    if roll < 0.7:
        return bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 300)))
    if roll < 0.75:
        depth = rnd.choice([50, 900, 985, 5000])
        return b'{"model": "gpt-4o-mini", "messages": ' + b"[" * depth + b"]" * depth + b"}"
    if roll < 0.8:
        return b""
    if roll < 0.85:
        return b'{"model": "gpt-4o-mini", "messages": "' + "é".encode() * 300 + b'"}'
    if roll < 0.9:
        return json.dumps([1, 2, 3]).encode()
    return b'{"model": "\xff\xfe", "messages": []}'


def random_request(rnd: random.Random) -> bytes:
    method = rnd.choice(METHODS)
    path = rnd.choice(PATHS)
    body = random_body(rnd) if method != b"GET" or rnd.random() < 0.2 else b""
    lines = [b"Host: gateway", b"Connection: close"]
    ident = rnd.choice(IDENTITIES)
    if ident or rnd.random() < 0.5:
        lines.append(b"X-Agent-Identity: " + ident.encode())
    if rnd.random() < 0.1:
        lines.append(b"X-Agent-Identity: " + IDENTITY.encode())  # a duplicate line
    lines += rnd.sample(HEADER_LINES, k=rnd.choice([0, 0, 0, 0, 1, 1, 2, 3]))
    chunked = rnd.random() < 0.1
    if chunked:
        lines.append(b"Transfer-Encoding: chunked")
        cut = rnd.randint(0, len(body))
        body = b"".join(
            b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:cut], body[cut:]) if part
        ) + rnd.choice([b"0\r\n\r\n", b"zz\r\n", b"5\r\nab"])
    elif not any(line.startswith(b"Content-Length") for line in lines):
        lines.append(b"Content-Length: %d" % len(body))
    version = rnd.choice([b"HTTP/1.1"] * 27 + [b"HTTP/1.0", b"HTTP/2.0", b"HTTP/9"])
    ending = b"\r\n" if rnd.random() < 0.97 else b"\n"
    head = method + b" " + path + b" " + version + ending
    return head + b"".join(line + ending for line in lines) + ending + body


async def send(url: str, data: bytes) -> Reply | None:
    """The gateway's answer, or None if it closed without one (never a hang)."""
    reader, writer = await connect(url)
    try:
        writer.write(data)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        while Reply(head).status < 200:  # 100 Continue: the answer follows
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        length = Reply(head).headers.get("content-length")
        if data.startswith(b"HEAD "):
            rest = b""
        elif length is not None:
            rest = await asyncio.wait_for(reader.readexactly(int(length)), 15)
        else:
            rest = await asyncio.wait_for(reader.read(), 15)
        return Reply(head + rest)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    finally:
        writer.close()


async def test_live_fuzz(gateway: GatewayHarness) -> None:
    await gateway.restart(
        limits=Limits(header_timeout_seconds=1, body_timeout_seconds=1, max_header_bytes=4096)
    )
    rnd = random.Random(SEED)
    cases = [random_request(rnd) for _ in range(COUNT)]
    replies: list[tuple[bytes, Reply | None]] = []
    for start in range(0, COUNT, 15):
        batch = cases[start : start + 15]
        answers = await asyncio.gather(*(send(gateway.url, data) for data in batch))
        replies += zip(batch, answers, strict=True)
    answered = [(data, r) for data, r in replies if r is not None and r.status]
    assert len(answered) >= COUNT * 0.9, f"only {len(answered)} of {COUNT} answered"
    expect_audit: dict[str, bytes] = {}
    for data, reply in answered:
        assert reply is not None
        from_upstream = "x-agentctl-upstream-status" in reply.headers
        assert reply.status != 500 or from_upstream, data[:300]
        path = data.split(b" ", 2)[1].decode("latin-1")
        if reply.status >= 400 and not from_upstream and not data.startswith(b"HEAD "):
            reply.error()  # the OpenAI shape, with a request id
        if reply.status >= 400 or not path.startswith(UNAUDITED_OK):
            if "x-request-id" in reply.headers and not path.startswith(("/healthz", "/metrics")):
                expect_audit[reply.headers["x-request-id"]] = data
            else:
                assert path.startswith(("/healthz", "/metrics")), data[:300]
    assert len(expect_audit) > COUNT / 2
    await ok(gateway)
    rows = {r["request_id"] for r in await gateway.records()}
    missing = {rid: data[:120] for rid, data in expect_audit.items() if rid not in rows}
    assert not missing, missing

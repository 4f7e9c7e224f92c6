"""Limits, each configurable under `limits:` and each refused in the OpenAI error shape,
audited once and never forwarded: header size and count, control bytes, slow heads and
bodies, idle keep-alive, concurrent connections, the upstream response cap."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentctl.config import Limits, load_settings
from agentctl.errors import ConfigError
from tests.gateway.support import CHAT, RAW_BODY, error_of, ok, post
from tests.hardening.support import Reply, audited, connect, exchange, read_reply, request
from tests.harness import GatewayHarness


def test_every_limit_is_read_from_agentctl_yaml(home: Path) -> None:
    home.mkdir()
    (home / "agentctl.yaml").write_text(
        "limits:\n  max_body_bytes: 1000\n  max_response_bytes: 2000\n"
        "  max_header_bytes: 3000\n  max_headers: 40\n  header_timeout_seconds: 5\n"
        "  body_timeout_seconds: 6\n  idle_timeout_seconds: 7\n  max_connections: 8\n"
        "audit:\n  on_journal_failure: open\ntrusted_proxies: [10.0.0.0/8, 127.0.0.1]\n"
    )
    settings = load_settings()
    assert settings.limits == Limits(
        max_body_bytes=1000,
        max_response_bytes=2000,
        max_header_bytes=3000,
        max_headers=40,
        header_timeout_seconds=5,
        body_timeout_seconds=6,
        idle_timeout_seconds=7,
        max_connections=8,
    )
    assert settings.audit.on_journal_failure == "open"
    assert settings.trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    (home / "agentctl.yaml").write_text("limits:\n  max_connections: 0\n")
    with pytest.raises(ConfigError, match=r"limits\.max_connections"):
        load_settings()


async def test_header_longer_than_the_limit_is_431(gateway: GatewayHarness) -> None:
    await gateway.restart(limits=Limits(max_header_bytes=1024))
    assert gateway.sim is not None
    before = len(gateway.sim.state.requests)
    reply = await exchange(gateway.url, request(b"X-Pad: " + b"p" * 1100 + b"\r\n"))
    assert reply.status == 431
    err = reply.error()
    assert err["code"] == "header_too_large"
    assert "1024 bytes (limits.max_header_bytes)" in err["message"]
    row = await audited(gateway, reply.headers["x-request-id"])
    assert (row["status"], row["outcome"], row["rule_id"]) == (431, "refused", "header_too_large")
    assert row["client"] == "127.0.0.1"
    assert len(gateway.sim.state.requests) == before
    # just under the configured limit (not aiohttp's default) is served
    fits = await exchange(gateway.url, request(b"X-Pad: " + b"p" * 900 + b"\r\n"))
    assert fits.status == 200, fits.raw[:300]


async def test_long_request_line_is_431(gateway: GatewayHarness) -> None:
    await gateway.restart(limits=Limits(max_header_bytes=1024))
    reply = await exchange(gateway.url, request(path=b"/v1/chat/completions?q=" + b"a" * 2000))
    assert reply.status == 431
    assert reply.error()["code"] == "header_too_large"
    await audited(gateway, reply.headers["x-request-id"])


async def test_more_headers_than_the_limit_is_431(gateway: GatewayHarness) -> None:
    await gateway.restart(limits=Limits(max_headers=20))
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(25))
    reply = await exchange(gateway.url, request(many))
    assert reply.status == 431
    err = reply.error()
    assert err["code"] == "too_many_headers"
    assert "more than 20 headers" in err["message"]
    await audited(gateway, reply.headers["x-request-id"])
    few = b"".join(b"X-H%d: v\r\n" % i for i in range(8))
    assert (await exchange(gateway.url, request(few))).status == 200


@pytest.mark.parametrize(
    "value",
    [b"a\x00b", b"a\x01b", b"a\x1bb", b"a\x7fb", b"a\rb", b"a\r\nX-Injected: 1\rb"],
    ids=["nul", "soh", "esc", "del", "bare-cr", "cr-smuggle"],
)
async def test_control_bytes_in_any_header_are_refused(
    gateway: GatewayHarness, value: bytes
) -> None:
    assert gateway.sim is not None
    before = len(gateway.sim.state.requests)
    reply = await exchange(gateway.url, request(b"X-Trace-Note: " + value + b"\r\n"))
    assert reply.status == 400
    assert reply.error()["code"] == "invalid_header"
    row = await audited(gateway, reply.headers["x-request-id"])
    assert (row["outcome"], row["rule_id"]) == ("refused", "invalid_header")
    assert len(gateway.sim.state.requests) == before
    await ok(gateway)


async def test_a_trickled_request_head_is_cut_off_with_408(gateway: GatewayHarness) -> None:
    # The trickle (0.3 s) ends well before the deadline (1 s): a byte written after the
    # gateway answered and closed would reset the connection and lose the reply (seen
    # on a loaded CI machine with a 0.3 s deadline).
    await gateway.restart(limits=Limits(header_timeout_seconds=1.0))
    reader, writer = await connect(gateway.url)
    try:
        writer.write(b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
        await writer.drain()
        for _ in range(3):  # keeps sending, never finishes the head
            await asyncio.sleep(0.1)
            writer.write(b"a")
        reply = Reply(await asyncio.wait_for(reader.read(), 10))
    finally:
        writer.close()
    assert reply.status == 408
    err = reply.error()
    assert err["code"] == "request_timeout"
    assert "limits.header_timeout_seconds" in err["message"]
    row = await audited(gateway, reply.headers["x-request-id"])
    assert (row["outcome"], row["rule_id"]) == ("refused", "request_timeout")
    await ok(gateway)


async def test_a_trickled_body_is_cut_off_with_408(gateway: GatewayHarness) -> None:
    await gateway.restart(limits=Limits(body_timeout_seconds=0.3))
    assert gateway.sim is not None
    reader, writer = await connect(gateway.url)
    try:
        data = request(body=RAW_BODY)
        writer.write(data[: -len(RAW_BODY) + 5])  # the head and 5 bytes of the body
        await writer.drain()
        reply = await read_reply(reader)
    finally:
        writer.close()
    assert reply.status == 408
    err = reply.error()
    assert err["code"] == "request_timeout"
    assert "limits.body_timeout_seconds" in err["message"]
    row = await audited(gateway, reply.headers["x-request-id"])
    assert (row["endpoint"], row["agent"], row["rule_id"]) == (CHAT, "bot-a", "request_timeout")
    assert gateway.sim.state.requests == []
    await ok(gateway)


async def test_an_idle_keep_alive_connection_is_closed(gateway: GatewayHarness) -> None:
    await gateway.restart(limits=Limits(idle_timeout_seconds=0.3))
    reader, writer = await connect(gateway.url)
    try:
        writer.write(request().replace(b"Connection: close", b"Connection: keep-alive"))
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200")
        # the gateway, not the client, ends the idle connection: EOF arrives
        rest = await asyncio.wait_for(reader.read(), 10)
        assert b'"chat.completion"' in rest
        assert reader.at_eof()
    finally:
        writer.close()


async def test_connections_beyond_the_limit_get_503_and_are_closed(
    gateway: GatewayHarness,
) -> None:
    await gateway.restart(limits=Limits(max_connections=2))
    keep = request().replace(b"Connection: close", b"Connection: keep-alive")
    held = []
    try:
        for _ in range(2):  # two open keep-alive connections, each answered once
            reader, writer = await connect(gateway.url)
            held.append(writer)
            writer.write(keep)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200")
        reply = await exchange(gateway.url, keep)  # the gateway closes it: read() ends
        assert reply.status == 503
        err = reply.error()
        assert err["code"] == "too_many_connections"
        assert "2 open connections (limits.max_connections)" in err["message"]
        assert reply.headers["retry-after"] == "1"
        row = await audited(gateway, reply.headers["x-request-id"])
        assert (row["status"], row["rule_id"]) == (503, "too_many_connections")
    finally:
        for writer in held:
            writer.close()
    for _ in range(200):  # the freed slots are taken again
        resp = await post(gateway)
        if resp.status_code == 200:
            break
        await asyncio.sleep(0.02)
    assert resp.status_code == 200


async def test_upstream_body_over_the_cap_is_502(gateway: GatewayHarness) -> None:
    await gateway.restart(limits=Limits(max_response_bytes=20_000))
    resp = await post(gateway, **{"x-sim-response-bytes": "50000"})
    err = error_of(resp, 502, "upstream_response_too_large")
    assert err["type"] == "api_error"
    [row] = await gateway.records()
    assert (row["status"], row["rule_id"]) == (502, "upstream_response_too_large")
    small = await post(gateway, **{"x-sim-response-bytes": "10000"})
    assert small.status_code == 200


async def test_upstream_stream_over_the_cap_is_cut_off_and_audited(
    gateway: GatewayHarness,
) -> None:
    """A stream has no Content-Length to refuse up front: the relay counts what it
    receives and, past `limits.max_response_bytes`, ends the client's stream with an
    error event and closes the upstream connection; the call is still audited once."""
    await gateway.restart(limits=Limits(max_response_bytes=20_000))
    body = RAW_BODY.replace(b'"messages"', b'"stream": true, "messages"', 1)
    resp = await post(gateway, body, **{"x-sim-response-bytes": "200000"})
    assert resp.status_code == 200  # the header was out before the cap was reached
    assert resp.text.rstrip().endswith("}")
    last = resp.text.rstrip().rsplit("data: ", 1)[1]
    assert '"upstream_response_too_large"' in last
    assert len(resp.content) < 40_000
    [row] = await gateway.records()
    assert row["outcome"] == "upstream_error"
    assert "max_response_bytes" in row["message"]
    assert row["usage_source"] == "estimated" and row["prompt_tokens"] > 0  # still metered
    small = await post(gateway, body, **{"x-sim-response-bytes": "10000"})
    assert small.status_code == 200 and "data: [DONE]" in small.text

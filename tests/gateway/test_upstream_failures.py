"""Upstream failures through the gateway, seen by the openai SDK and by raw HTTP:
error statuses passed through with their retry headers, 502/504 for transport
failures, SSE error events mid-stream, and one audit row for each."""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Awaitable, Callable

import httpx
import openai
import pytest
from aiohttp import web

from agentctl.config import Timeouts
from agentctl.usage import Usage
from tests.gateway.support import BODY, CHAT, HEADERS, MESSAGES, RAW_BODY, error_of, ok, post
from tests.harness import GatewayHarness, sim_upstream

SIM_429 = {
    "message": "Rate limit reached for requests (simulated).",
    "type": "requests",
    "param": None,
    "code": "rate_limit_exceeded",
}
SIM_500 = {
    "message": "The server had an error processing your request (simulated).",
    "type": "server_error",
    "param": None,
    "code": None,
}
STREAM_BODY = json.dumps({**BODY, "stream": True}).encode()


def estimate_for(raw: bytes) -> int:
    return math.ceil(len(raw) / 3)


def sse_data(text: str) -> list[str]:
    return [e[len("data: ") :] for e in text.split("\n\n") if e.startswith("data: ")]


async def test_429_passes_through_with_retry_headers(gateway: GatewayHarness) -> None:
    client = gateway.aclient(max_retries=0)
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            extra_headers={"x-sim-status": "429", "x-sim-retry-after-ms": "1500"},
        )
    err = info.value
    assert err.status_code == 429
    assert err.body == SIM_429
    headers = err.response.headers
    assert (headers["retry-after-ms"], headers["retry-after"]) == ("1500", "2")
    assert headers["x-agentctl-upstream-status"] == "429"
    assert headers["x-upstream-request-id"].startswith("req_")
    assert "x-should-retry" not in headers
    [rec] = await gateway.records()
    assert rec["request_id"] == headers["x-request-id"]
    assert (rec["status"], rec["outcome"], rec["rule_id"]) == (429, "upstream_error", None)
    assert rec["message"] == SIM_429["message"]
    assert (rec["usage_source"], rec["prompt_tokens"], rec["cost_pico"]) == ("none", 0, 0)


async def test_500_passes_through_raw(gateway: GatewayHarness) -> None:
    resp = await post(gateway, **{"x-sim-status": "500"})
    assert resp.status_code == 500
    assert resp.json() == {"error": SIM_500}
    assert resp.headers["x-agentctl-upstream-status"] == "500"
    assert resp.headers["x-agentctl-agent"] == "bot-a"
    [rec] = await gateway.records()
    assert (rec["status"], rec["outcome"], rec["rule_id"]) == (500, "upstream_error", None)
    assert json.loads(rec["attempts"]) == [{"upstream": "sim", "status": 500}]


async def test_500_raises_internal_server_error_in_sdk(gateway: GatewayHarness) -> None:
    client = gateway.aclient(max_retries=0)
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-sim-status": "500"}
        )
    assert info.value.status_code == 500
    assert info.value.response.headers["x-agentctl-upstream-status"] == "500"
    assert [r["status"] for r in await gateway.records()] == [500]


async def test_sdk_retries_a_passed_through_429(gateway: GatewayHarness) -> None:
    client = gateway.aclient()  # the SDK's default: 2 retries
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            extra_headers={"x-sim-status": "429", "x-sim-retry-after-ms": "10"},
        )
    assert gateway.sim is not None
    attempts = gateway.sim.state.requests
    assert len(attempts) == 3
    assert [r.headers.get("x-stainless-retry-count") for r in attempts] == ["0", "1", "2"]
    recs = await gateway.records()
    assert [(r["status"], r["outcome"]) for r in recs] == [(429, "upstream_error")] * 3
    assert len({r["request_id"] for r in recs}) == 3


async def test_sdk_retry_after_429_then_succeeds(gateway: GatewayHarness) -> None:
    client = gateway.aclient()
    resp = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        extra_headers={
            "x-sim-status": "429",
            "x-sim-fail-first": "1",
            "x-sim-key": "retry-then-ok",
            "x-sim-retry-after-ms": "10",
        },
    )
    assert resp.choices[0].message.content
    assert gateway.sim is not None
    assert len(gateway.sim.state.requests) == 2
    recs = await gateway.records()
    assert [(r["status"], r["outcome"]) for r in recs] == [
        (429, "upstream_error"),
        (200, "served"),
    ]
    assert recs[1]["request_id"] == resp._request_id
    assert recs[1]["prompt_tokens"] == resp.usage.prompt_tokens


async def fast_timeouts(gateway: GatewayHarness, **kw: float) -> None:
    assert gateway.sim is not None
    timeouts = Timeouts(**{"first_byte": 0.5, "idle": 0.5, "connect": 1.0, "total": 10.0, **kw})
    await gateway.restart(upstreams=(sim_upstream(gateway.sim, timeouts=timeouts),))


async def test_upstream_hang_is_504(gateway: GatewayHarness) -> None:
    await fast_timeouts(gateway)
    resp = await post(gateway, **{"x-sim-hang": "1"})
    err = error_of(resp, 504, "upstream_timeout")
    assert err == {
        "message": "upstream 'sim' did not answer within 0.5s",
        "type": "api_error",
        "param": None,
        "code": "upstream_timeout",
    }
    [rec] = await gateway.records()
    assert (rec["status"], rec["outcome"], rec["rule_id"]) == (504, "error", "upstream_timeout")
    assert json.loads(rec["attempts"]) == [{"upstream": "sim", "error": "timeout"}]
    assert rec["ttfb_ms"] is None
    await ok(gateway)


async def test_upstream_hang_raises_in_sdk(gateway: GatewayHarness) -> None:
    await fast_timeouts(gateway)
    client = gateway.aclient(max_retries=0)
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-sim-hang": "1"}
        )
    assert info.value.status_code == 504
    assert info.value.code == "upstream_timeout"


async def test_stream_idle_past_timeout_ends_with_error_event(gateway: GatewayHarness) -> None:
    await fast_timeouts(gateway, idle=0.2)
    resp = await post(gateway, STREAM_BODY, **{"x-sim-chunk-delay-ms": "1000"})
    assert resp.status_code == 200
    events = sse_data(resp.text)
    assert len(events) == 2
    assert json.loads(events[0])["object"] == "chat.completion.chunk"
    assert json.loads(events[1]) == {
        "error": {
            "message": "upstream stream went idle past the timeout",
            "type": "api_error",
            "param": None,
            "code": "upstream_timeout",
        }
    }
    [rec] = await gateway.records()
    assert (rec["status"], rec["outcome"]) == (200, "timeout")
    assert (rec["usage_source"], rec["completion_tokens"]) == ("estimated", 1)
    assert rec["prompt_tokens"] == estimate_for(STREAM_BODY)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_connection_refused_is_502(gateway: GatewayHarness) -> None:
    dead = sim_upstream(gateway.sim, name="dead", base_url=f"http://127.0.0.1:{closed_port()}/v1")
    await gateway.restart(upstreams=(dead,))
    resp = await post(gateway)
    err = error_of(resp, 502, "upstream_unavailable")
    assert err == {
        "message": "upstream 'dead' is unreachable (ClientConnectorError)",
        "type": "api_error",
        "param": None,
        "code": "upstream_unavailable",
    }
    [rec] = await gateway.records()
    assert (rec["status"], rec["outcome"], rec["rule_id"]) == (502, "error", "upstream_unavailable")
    assert rec["upstream"] == "dead"
    assert json.loads(rec["attempts"]) == [{"upstream": "dead", "error": "ClientConnectorError"}]


async def test_connection_refused_sdk_retries_then_raises(gateway: GatewayHarness) -> None:
    dead = sim_upstream(gateway.sim, name="dead", base_url=f"http://127.0.0.1:{closed_port()}/v1")
    await gateway.restart(upstreams=(dead,))
    client = gateway.aclient(max_retries=1)
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert (info.value.status_code, info.value.code) == (502, "upstream_unavailable")
    assert [r["rule_id"] for r in await gateway.records()] == ["upstream_unavailable"] * 2


async def test_reset_before_any_byte_is_502(gateway: GatewayHarness) -> None:
    resp = await post(gateway, **{"x-sim-reset-after": "0"})
    err = error_of(resp, 502, "upstream_unavailable")
    # an RST before the status line: the exception name depends on when the kernel reports it
    assert err["message"] in {
        "upstream 'sim' is unreachable (ClientOSError)",
        "upstream 'sim' is unreachable (ServerDisconnectedError)",
    }
    [rec] = await gateway.records()
    assert (rec["status"], rec["outcome"]) == (502, "error")


async def test_reset_inside_json_body_is_502(gateway: GatewayHarness) -> None:
    resp = await post(gateway, **{"x-sim-reset-after": "20"})
    err = error_of(resp, 502, "upstream_unavailable")
    assert err["message"] == "upstream body failed (ClientPayloadError)"
    [rec] = await gateway.records()
    assert (rec["status"], rec["outcome"], rec["rule_id"]) == (502, "error", "upstream_unavailable")


async def test_malformed_json_body_is_relayed_and_estimated(gateway: GatewayHarness) -> None:
    resp = await post(gateway, **{"x-sim-malformed": "1"})
    assert resp.status_code == 200
    assert resp.content.startswith(b'{"id":"chatcmpl-')
    with pytest.raises(ValueError):
        json.loads(resp.content)
    [rec] = await gateway.records()
    assert (rec["status"], rec["outcome"], rec["usage_source"]) == (200, "served", "estimated")
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (estimate_for(RAW_BODY), 0)
    assert rec["message"] == "upstream response carried no usage; estimated"
    usage = Usage(prompt_tokens=estimate_for(RAW_BODY), source="estimated")
    assert rec["cost_pico"] == gateway.gw.pricer.cost(usage, "gpt-4o-mini", "openai").pico


async def test_reset_mid_stream_sends_error_event(gateway: GatewayHarness) -> None:
    resp = await post(gateway, STREAM_BODY, **{"x-sim-reset-after": "3"})
    assert resp.status_code == 200
    events = sse_data(resp.text)
    assert len(events) == 4
    assert [json.loads(e)["object"] for e in events[:3]] == ["chat.completion.chunk"] * 3
    assert json.loads(events[3]) == {
        "error": {
            "message": "upstream failed mid-stream (ClientPayloadError)",
            "type": "api_error",
            "param": None,
            "code": "upstream_reset",
        }
    }
    [rec] = await gateway.records()
    assert (rec["status"], rec["outcome"]) == (200, "upstream_error")
    assert rec["message"] == "upstream failed mid-stream (ClientPayloadError)"
    assert (rec["usage_source"], rec["completion_tokens"]) == ("estimated", 3)
    assert rec["prompt_tokens"] == estimate_for(STREAM_BODY)
    assert rec["cost_pico"] > 0


async def test_reset_mid_stream_raises_api_error_in_sdk(gateway: GatewayHarness) -> None:
    client = gateway.aclient(max_retries=0)
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        extra_headers={"x-sim-reset-after": "3"},
    )
    seen = []
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            seen.append(chunk)
    assert len(seen) == 3
    assert info.value.message == "upstream failed mid-stream (ClientPayloadError)"
    [rec] = await gateway.records()
    assert rec["outcome"] == "upstream_error"


async def test_stream_without_usage_is_estimated(gateway: GatewayHarness) -> None:
    resp = await post(gateway, STREAM_BODY, **{"x-sim-omit-usage": "1"})
    assert resp.status_code == 200
    events = sse_data(resp.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["usage"] is None for c in chunks)
    [rec] = await gateway.records()
    assert (rec["status"], rec["outcome"], rec["usage_source"]) == (200, "served", "estimated")
    assert rec["message"] == "stream carried no usage; estimated"
    assert rec["completion_tokens"] == len(chunks)
    assert rec["prompt_tokens"] == estimate_for(STREAM_BODY)
    assert gateway.sim is not None
    assert gateway.sim.state.requests[-1].json["stream_options"] == {"include_usage": True}


async def post_through(
    gateway: GatewayHarness, name: str, handler: Callable[[web.Request], Awaitable[web.Response]]
) -> httpx.Response:
    """One chat request through the gateway to a one-route upstream answering `handler`."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        upstream = sim_upstream(gateway.sim, name=name, base_url=f"http://127.0.0.1:{port}/v1")
        await gateway.restart(upstreams=(upstream,))
        return await post(gateway)
    finally:
        await runner.cleanup()


async def test_non_json_upstream_error_is_502(gateway: GatewayHarness) -> None:
    """A proxy in front of the provider answering HTML must not reach the SDK as-is."""

    async def html(_: web.Request) -> web.Response:
        return web.Response(status=503, text="<html>down</html>", content_type="text/html")

    resp = await post_through(gateway, "lb", html)
    err = error_of(resp, 502, "upstream_error")
    assert err["message"] == "upstream answered 503 without an error object: '<html>down</html>'"
    [rec] = await gateway.records()
    assert (rec["status"], rec["outcome"], rec["rule_id"]) == (502, "error", "upstream_error")


async def test_upstream_refusing_our_key_is_502_and_quotes_nothing(
    gateway: GatewayHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """The provider's 401 is about the gateway's key, not the agent's: passed through it
    made SDKs raise AuthenticationError about their own key, and a provider's message may
    quote a masked fragment of our key (new-user trial finding)."""
    fragment = "sk-prov********************wxyz"

    async def refuse(_: web.Request) -> web.Response:
        body = {"error": {"message": f"Incorrect API key provided: {fragment}.",
                          "type": "invalid_request_error", "param": None,
                          "code": "invalid_api_key"}}  # fmt: skip
        return web.json_response(body, status=401)

    resp = await post_through(gateway, "prov", refuse)
    err = error_of(resp, 502, "upstream_auth_failed")
    assert "upstreams[].api_key" in err["message"] and "'prov'" in err["message"]
    assert resp.headers["x-agentctl-upstream-status"] == "401"
    [rec] = await gateway.records()
    assert (rec["status"], rec["rule_id"]) == (502, "upstream_auth_failed")
    assert fragment not in resp.text and fragment not in json.dumps(rec)
    assert fragment not in caplog.text and "refused the gateway's provider key" in caplog.text


async def test_sync_sdk_sees_passed_through_status(gateway: GatewayHarness) -> None:
    import asyncio

    client = gateway.client(max_retries=0)

    def call() -> openai.APIStatusError:
        try:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-sim-status": "503"}
            )
        except openai.APIStatusError as exc:
            return exc
        raise AssertionError("expected an error")

    err = await asyncio.to_thread(call)
    assert err.status_code == 503
    assert err.response.headers["x-agentctl-upstream-status"] == "503"
    assert err.response.headers["retry-after-ms"] == "100"


async def test_httpx_client_sees_request_ids(gateway: GatewayHarness) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.post(
            CHAT, content=RAW_BODY, headers={"X-Agent-Identity": "name=x; owner=y; purpose=test"}
        )
    assert resp.status_code == 200
    [rec] = await gateway.records()
    assert resp.headers["x-request-id"] == rec["request_id"]
    assert resp.headers["x-upstream-request-id"] == resp.json()["id"].replace("chatcmpl-", "req_")


async def test_models_list_with_every_upstream_down_is_502(gateway: GatewayHarness) -> None:
    # Regression: it answered 200 with an empty list, i.e. "you may use no model".
    dead = sim_upstream(gateway.sim, name="dead", base_url=f"http://127.0.0.1:{closed_port()}/v1")
    await gateway.restart(upstreams=(dead,))
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        resp = await client.get("/v1/models", headers=HEADERS)
    err = error_of(resp, 502, "upstream_unavailable")
    assert err["message"].startswith("no upstream answered GET /models (dead: unreachable)")

"""Client mistakes in the body, path or method: an OpenAI-shaped 4xx naming the problem,
exactly one audit row, nothing forwarded, never a 500."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from agentctl.config import Limits
from tests.gateway.support import BODY, CHAT, HEADERS, RAW_BODY, error_of, ok, post
from tests.hardening.support import GOOD_HEAD, connect, read_reply
from tests.harness import IDENTITY, GatewayHarness, sim_upstream


def body(**fields: object) -> bytes:
    return json.dumps({**BODY, **fields}).encode()


# (case id, raw body, status, code, param, exact message)
CASES = [
    (
        "invalid-json",
        b'{"model": "gpt-4o-mini",',
        "invalid_json",
        None,
        "request body is not valid JSON: Expecting property name enclosed in double "
        "quotes: line 1 column 25 (char 24)",
    ),
    (
        "not-utf8",
        b'{"model": "gpt-4o-mini", "x": "\xff"}',
        "invalid_encoding",
        None,
        "request body is not valid UTF-8 (byte 31); send UTF-8 encoded JSON",
    ),
    ("array", b"[1, 2]", "invalid_json", None, "request body must be a JSON object"),
    ("string", b'"hello"', "invalid_json", None, "request body must be a JSON object"),
    ("empty", b"", "invalid_json", None, "request body is empty; send a JSON object"),
    (
        "missing-model",
        json.dumps({"messages": []}).encode(),
        "missing_model",
        "model",
        "'model' is required and must be a non-empty string",
    ),
    (
        "model-not-string",
        body(model=5),
        "invalid_value",
        "model",
        "'model' is required and must be a non-empty string",
    ),
    (
        "model-blank",
        body(model="  "),
        "invalid_value",
        "model",
        "'model' is required and must be a non-empty string",
    ),
    (
        # Regression (found by a fresh-user trial): forwarded as it came, into logs and audit.
        "model-too-long",
        body(model="m" * 257),
        "invalid_value",
        "model",
        "'model' must be at most 256 printable characters (no control characters)",
    ),
    (
        "model-control-character",
        body(model="gpt-4o-mini\u0000"),
        "invalid_value",
        "model",
        "'model' must be at most 256 printable characters (no control characters)",
    ),
    (
        # Regression: `json` reads NaN, so it was forwarded (orjson refuses it).
        "nan",
        b'{"model": "gpt-4o-mini", "temperature": NaN}',
        "invalid_json",
        None,
        "request body is not valid JSON: NaN is not a JSON value",
    ),
    (
        # Regression: the message quoted the interpreter's advice (sys.set_int_max_str_digits).
        "integer-of-5000-digits",
        b'{"model": "gpt-4o-mini", "seed": ' + b"9" * 5000 + b"}",
        "invalid_json",
        None,
        "request body is not valid JSON: an integer has more than 4,300 digits",
    ),
    (
        "stream-yes",
        body(stream="yes"),
        "invalid_value",
        "stream",
        "'stream' must be true or false",
    ),
    (
        "negative-max-tokens",
        body(max_tokens=-1),
        "invalid_value",
        "max_tokens",
        "'max_tokens' must be a non-negative integer",
    ),
    (
        "bool-max-completion-tokens",
        body(max_completion_tokens=True),
        "invalid_value",
        "max_completion_tokens",
        "'max_completion_tokens' must be a non-negative integer",
    ),
    ("negative-n", body(n=-2), "invalid_value", "n", "'n' must be a non-negative integer"),
    (
        # Regression: usage injection replaced it with {"include_usage": true} and served.
        "stream-options-string",
        body(stream=True, stream_options="x"),
        "invalid_value",
        "stream_options",
        "'stream_options' must be an object",
    ),
    (
        # Regression: served, then its audit row was refused by SQLite (int64) and lost.
        "huge-max-tokens",
        b'{"model": "gpt-4o-mini", "stream": true, "max_tokens": 99999999999999999999999}',
        "invalid_value",
        "max_tokens",
        "'max_tokens' must be at most 2147483647",
    ),
    (
        "max-tokens-just-over-int32",
        body(max_tokens=2**31),
        "invalid_value",
        "max_tokens",
        "'max_tokens' must be at most 2147483647",
    ),
]


async def assert_one_refusal(gateway: GatewayHarness, status: int, code: str, message: str) -> dict:
    assert gateway.sim is not None
    assert gateway.sim.state.requests == [], "a bad request must not reach the upstream"
    recs = await gateway.records()
    assert len(recs) == 1
    [rec] = recs
    assert (rec["status"], rec["outcome"], rec["rule_id"], rec["message"]) == (
        status,
        "refused",
        code,
        message,
    )
    return rec


@pytest.mark.parametrize(
    ("raw", "code", "param", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_bad_body_is_refused(
    gateway: GatewayHarness, raw: bytes, code: str, param: str | None, message: str
) -> None:
    resp = await post(gateway, raw)
    err = error_of(resp, 400, code)
    assert err == {
        "message": message,
        "type": "invalid_request_error",
        "param": param,
        "code": code,
    }
    assert resp.headers["x-agentctl-agent"] == "bot-a"
    rec = await assert_one_refusal(gateway, 400, code, message)
    assert (rec["agent"], rec["owner"], rec["purpose"]) == ("bot-a", "team-ml", "production")
    assert rec["request_id"] == resp.headers["x-request-id"]
    await ok(gateway)


async def test_unrouted_model_is_404(gateway: GatewayHarness) -> None:
    assert gateway.sim is not None
    await gateway.restart(upstreams=(sim_upstream(gateway.sim, models=("gpt-*",)),))
    resp = await post(gateway, body(model="no-such-model"))
    err = error_of(resp, 404, "model_not_found")
    message = "no upstream serves model 'no-such-model'; check `upstreams` in agentctl.yaml"
    assert err == {
        "message": message,
        "type": "not_found_error",
        "param": "model",
        "code": "model_not_found",
    }
    rec = await assert_one_refusal(gateway, 404, "model_not_found", message)
    assert rec["model"] == "no-such-model"
    await ok(gateway)


async def test_stream_null_means_not_streaming(gateway: GatewayHarness) -> None:
    resp = await post(gateway, body(stream=None))
    assert resp.status_code == 200, resp.text
    assert resp.json()["object"] == "chat.completion"


async def test_oversize_body_with_content_length_is_413(gateway: GatewayHarness) -> None:
    await gateway.restart(limits=Limits(max_body_bytes=1024))
    resp = await post(gateway, body(pad="x" * 2000))
    err = error_of(resp, 413, "request_too_large")
    message = "request body is larger than the gateway limit of 1024 bytes"
    assert err == {
        "message": message,
        "type": "invalid_request_error",
        "param": None,
        "code": "request_too_large",
    }
    await assert_one_refusal(gateway, 413, "request_too_large", message)
    await ok(gateway)


async def test_oversize_body_expecting_100_continue_gets_413_without_a_100(
    gateway: GatewayHarness,
) -> None:
    """Regression (fresh-user trial): the gateway sent 100 Continue to a body it was going
    to refuse, inviting the client to upload all of it first."""
    assert gateway.settings is not None
    reader, writer = await connect(gateway.url)
    try:
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            + GOOD_HEAD
            + b"Expect: 100-continue\r\nContent-Length: "
            + str(gateway.settings.limits.max_body_bytes + 1).encode()
            + b"\r\n\r\n"
        )
        await writer.drain()
        reply = await read_reply(reader)
    finally:
        writer.close()
    assert reply.status == 413, reply.raw[:200]
    assert reply.error()["code"] == "request_too_large"
    await assert_one_refusal(gateway, 413, "request_too_large", reply.error()["message"])
    # Within the limit the client is told to go on, and is served.
    reader, writer = await connect(gateway.url)
    try:
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            + GOOD_HEAD
            + b"Expect: 100-continue\r\nContent-Length: "
            + str(len(RAW_BODY)).encode()
            + b"\r\n\r\n"
        )
        await writer.drain()
        line = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert line == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(RAW_BODY)
        assert (await read_reply(reader)).status == 200
    finally:
        writer.close()


async def test_oversize_chunked_body_is_413(gateway: GatewayHarness) -> None:
    await gateway.restart(limits=Limits(max_body_bytes=1024))

    async def chunks() -> AsyncIterator[bytes]:
        yield RAW_BODY[:-1]
        for _ in range(8):
            yield b', "pad": "' + b"x" * 200 + b'"'
        yield b"}"

    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.post(CHAT, content=chunks(), headers=HEADERS)
    assert "content-length" not in resp.request.headers
    assert resp.request.headers["transfer-encoding"] == "chunked"
    err = error_of(resp, 413, "request_too_large")
    message = "request body is larger than the gateway limit of 1024 bytes"
    assert err["message"] == message
    await assert_one_refusal(gateway, 413, "request_too_large", message)
    await ok(gateway)


async def test_body_at_the_limit_is_accepted(gateway: GatewayHarness) -> None:
    raw = body(pad="")
    raw = body(pad="x" * (600 - len(raw)))
    assert len(raw) == 600
    await gateway.restart(limits=Limits(max_body_bytes=600))
    resp = await post(gateway, raw)
    assert resp.status_code == 200, resp.text
    assert gateway.sim is not None
    assert gateway.sim.state.requests[-1].body == raw


@pytest.mark.parametrize(
    ("method", "path", "status", "code", "type_"),
    [
        ("POST", "/v1/nope", 404, "unknown_endpoint", "not_found_error"),
        ("GET", "/v2/chat/completions", 404, "unknown_endpoint", "not_found_error"),
        ("GET", CHAT, 405, "method_not_allowed", "invalid_request_error"),
        ("DELETE", "/v1/embeddings", 405, "method_not_allowed", "invalid_request_error"),
    ],
)
async def test_unknown_path_and_wrong_method(
    gateway: GatewayHarness, method: str, path: str, status: int, code: str, type_: str
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.request(method, path, headers={"X-Agent-Identity": IDENTITY})
    err = error_of(resp, status, code)
    message = f"{method} {path} is not an endpoint of this gateway"
    assert err == {"message": message, "type": type_, "param": None, "code": code}
    rec = await assert_one_refusal(gateway, status, code, message)
    assert rec["endpoint"] == path
    assert rec["request_id"] == resp.headers["x-request-id"]
    # Regression: these rows had no agent and a NULL cost (reports counted them unpriced).
    assert (rec["agent"], rec["owner"], rec["cost_pico"]) == ("bot-a", "team-ml", 0)


async def test_405_names_the_allowed_method(gateway: GatewayHarness) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get(CHAT, headers={"X-Agent-Identity": IDENTITY})
    assert resp.status_code == 405
    assert resp.headers.get("allow") == "POST"


async def test_healthz_is_not_audited(gateway: GatewayHarness) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get("/healthz")
        missing = await client.post("/healthz")
    assert resp.status_code == 200 and resp.json()["status"] == "ok"
    assert missing.status_code == 405
    assert await gateway.records() == []


async def test_a_bug_in_the_pipeline_is_one_500_and_one_audit_record(
    gateway: GatewayHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: an unexpected exception used to be recorded twice (once by the
    pipeline as `disconnected`, once by the error middleware without identity)."""

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(gateway.gw.router, "plan", broken)
    resp = await post(gateway)
    err = error_of(resp, 500, "internal_error")
    assert resp.headers["x-request-id"] in err["message"]
    monkeypatch.undo()
    assert (await post(gateway)).status_code == 200  # and it keeps serving
    rows = await gateway.records()
    assert [(r["status"], r["rule_id"]) for r in rows] == [(500, "internal_error"), (200, None)]
    assert rows[0]["agent"] == "bot-a" and rows[0]["request_id"] == resp.headers["x-request-id"]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "gpt-4o-mini", "messages": [], "model": "o1"}',
        b'{"model": "gpt-4o-mini", "max_tokens": 5, "messages": [], "max_tokens": 90000}',
    ],
)
async def test_duplicate_governed_keys_are_refused(gateway: GatewayHarness, raw: bytes) -> None:
    """A duplicate key could be read one way by the gateway (last wins) and the other way
    upstream (first wins): an allowlist or reservation bypass."""
    resp = await post(gateway, raw)
    err = error_of(resp, 400, "duplicate_key")
    assert err["param"] in ("model", "max_tokens")
    assert gateway.sim is not None and gateway.sim.state.requests == []
    (row,) = await gateway.records()
    assert row["rule_id"] == "duplicate_key"


async def test_the_same_key_in_different_objects_is_fine(gateway: GatewayHarness) -> None:
    raw = (
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],'
        b' "metadata": {"model": "x"}}'
    )
    assert (await post(gateway, raw)).status_code == 200

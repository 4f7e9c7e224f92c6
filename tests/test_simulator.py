"""The simulated upstream, driven by the official SDKs and by raw aiohttp.

Usage is always compared with `expected_usage(...)` for the same body and headers, and
a few hand-computed numbers pin the documented formula itself.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

import agentctl.simulator as simulator_package
from agentctl.simulator import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    HEADERS,
    MESSAGES,
    RESPONSES,
    SIMULATOR,
    RunningSimulator,
    SimulatorConfig,
    create_app,
    embedding_vector,
    expected_usage,
    reply_text,
    start_simulator,
)

CHAT_BODY: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Say hello to the team"}]},
    ],
}


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    running = await start_simulator()
    yield running
    await running.close()


@pytest.fixture
async def oai(sim: RunningSimulator) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=sim.openai_url, api_key="sk-sim", max_retries=0) as c:
        yield c


@pytest.fixture
async def claude(sim: RunningSimulator) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=sim.url, api_key="sk-ant", max_retries=0) as c:
        yield c


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    """(event name, data) per SSE event, asserting the blank-line framing."""
    text = raw.decode()
    assert text.endswith("\n\n")
    events = []
    for block in text[:-2].split("\n\n"):
        name, data = None, None
        for line in block.split("\n"):
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data = value
            else:
                assert field == "" and line.startswith(":"), line
        if data is not None:
            events.append((name, data))
    return events


async def eventually(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never became true")


# --- token accounting ------------------------------------------------------------------


def test_formula_by_hand() -> None:
    assert expected_usage(CHAT, CHAT_BODY)["prompt_tokens"] == (3 + 3) + (3 + 5)
    assert expected_usage(CHAT, CHAT_BODY)["completion_tokens"] == 16
    limited = {**CHAT_BODY, "max_tokens": 5, "n": 2}
    assert expected_usage(CHAT, limited)["completion_tokens"] == 10
    prompts = {"model": "m", "prompt": ["a b", "c d e"], "n": 2, "max_tokens": 3}
    assert expected_usage(COMPLETIONS, prompts)["prompt_tokens"] == 5
    assert expected_usage(COMPLETIONS, prompts)["completion_tokens"] == 3 * 2 * 2
    assert expected_usage(EMBEDDINGS, {"model": "m", "input": [[1, 2, 3], [4]]}) == {
        "prompt_tokens": 4,
        "total_tokens": 4,
    }
    responses = {"model": "o3", "input": "one two", "instructions": "be brief"}
    assert expected_usage(RESPONSES, responses) == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 16,
        "output_tokens_details": {"reasoning_tokens": 8},
        "total_tokens": 26,
    }
    config = SimulatorConfig(cached_tokens=2, cache_write_tokens=3)
    messages = {
        "model": "claude",
        "max_tokens": 4,
        "system": "s t",
        "messages": CHAT_BODY["messages"],
    }
    assert expected_usage(MESSAGES, messages, config) == {
        "input_tokens": 19 - 2 - 3,
        "cache_creation_input_tokens": 3,
        "cache_read_input_tokens": 2,
        "output_tokens": 4,
    }
    headers = {"x-sim-cached-fraction": "0.5", "x-sim-reasoning-models": "gpt-*"}
    usage = expected_usage(CHAT, CHAT_BODY, headers=headers)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 7
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 8


def test_every_header_is_documented() -> None:
    doc = simulator_package.__doc__ or ""
    assert [h for h in HEADERS if f"`{h}`" not in doc] == []


# --- OpenAI SDK --------------------------------------------------------------------------


async def test_chat_json(sim: RunningSimulator, oai: openai.AsyncOpenAI) -> None:
    raw = await oai.chat.completions.with_raw_response.create(**CHAT_BODY)
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == reply_text(16)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.to_dict() == expected_usage(CHAT, CHAT_BODY)
    assert raw.headers["x-request-id"] == completion._request_id
    assert raw.headers["x-ratelimit-remaining-requests"].isdigit()


async def test_chat_stream_without_usage(sim: RunningSimulator, oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(**CHAT_BODY, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(len(c.choices) == 1 and c.usage is None for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == reply_text(16)
    assert len(chunks) == 16 + 2
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_chat_stream_with_usage(sim: RunningSimulator, oai: openai.AsyncOpenAI) -> None:
    body = {**CHAT_BODY, "model": "o3-mini", "max_completion_tokens": 12, "n": 2}
    headers = {"x-sim-cached-tokens": "4"}
    stream = await oai.chat.completions.create(
        **body, stream=True, stream_options={"include_usage": True}, extra_headers=headers
    )
    chunks = [chunk async for chunk in stream]
    *content, last = chunks
    assert last.choices == [] and last.usage is not None
    assert last.usage.to_dict() == expected_usage(CHAT, body, headers=headers)
    assert last.usage.completion_tokens == 24
    assert all(c.usage is None for c in content)
    for index in (0, 1):
        text = "".join(
            c.choices[0].delta.content or "" for c in content if c.choices[0].index == index
        )
        assert text == reply_text(12 - 8)
    assert {c.choices[0].finish_reason for c in content[-2:]} == {"length"}


async def test_completions(sim: RunningSimulator, oai: openai.AsyncOpenAI) -> None:
    body: dict[str, Any] = {
        "model": "gpt-3.5-turbo-instruct",
        "prompt": ["Once upon", "a time"],
        "max_tokens": 3,
    }
    completion = await oai.completions.create(**body)
    assert [c.text for c in completion.choices] == [reply_text(3)] * 2
    assert completion.usage is not None
    assert completion.usage.to_dict() == expected_usage(COMPLETIONS, body)
    stream = await oai.completions.create(
        **body, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.to_dict() == expected_usage(COMPLETIONS, body)
    assert "".join(c.choices[0].text for c in chunks[:-1] if c.choices[0].index == 1) == (
        reply_text(3)
    )


async def test_embeddings_base64_default_and_float(oai: openai.AsyncOpenAI) -> None:
    body: dict[str, Any] = {
        "model": "text-embedding-3-small",
        "input": ["first text", "second one here"],
    }
    result = await oai.embeddings.create(**body)
    assert [d.embedding for d in result.data] == [embedding_vector(t, 8) for t in body["input"]]
    assert result.usage.to_dict() == expected_usage(EMBEDDINGS, body)
    assert result.usage.prompt_tokens == 2 + 3
    floats = await oai.embeddings.create(
        model="text-embedding-3-small", input="x", encoding_format="float", dimensions=3
    )
    assert floats.data[0].embedding == embedding_vector("x", 3)


async def test_responses_json(oai: openai.AsyncOpenAI) -> None:
    body: dict[str, Any] = {
        "model": "o4-mini",
        "input": "Write a haiku",
        "instructions": "Be brief",
    }
    response = await oai.responses.create(**body)
    assert response.status == "completed"
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output_text == reply_text(16 - 8)
    assert response.usage is not None
    assert response.usage.to_dict() == expected_usage(RESPONSES, body)


async def test_responses_stream(oai: openai.AsyncOpenAI) -> None:
    body: dict[str, Any] = {"model": "gpt-4o", "input": [{"role": "user", "content": "Hi there"}]}
    async with oai.responses.stream(**body) as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text == reply_text(16)
    assert final.usage is not None
    assert final.usage.to_dict() == expected_usage(RESPONSES, body)


async def test_responses_stream_framing(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    body = {"model": "gpt-4o", "input": "Hi", "max_output_tokens": 3, "stream": True}
    async with http.post(sim.openai_url + "/responses", json=body) as resp:
        raw = await resp.read()
    events = sse_events(raw)
    for number, (name, data) in enumerate(events):
        payload = json.loads(data)
        assert payload["type"] == name and payload["sequence_number"] == number
    names = [name for name, _ in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert names.count("response.output_text.delta") == 3
    assert names[-1] == "response.incomplete"  # cut by max_output_tokens, as the API does
    assert json.loads(events[-1][1])["response"]["usage"] == expected_usage(RESPONSES, body)
    assert b"[DONE]" not in raw


async def test_models(sim: RunningSimulator, oai: openai.AsyncOpenAI) -> None:
    sim.config.models = ["gpt-4o", "claude-haiku-4-5"]
    listed = await oai.models.list()
    assert [(m.id, m.object, m.owned_by) for m in listed.data] == [
        ("gpt-4o", "model", "openai"),
        ("claude-haiku-4-5", "model", "anthropic"),
    ]
    assert (await oai.models.retrieve("gpt-4o")).id == "gpt-4o"
    with pytest.raises(openai.NotFoundError) as caught:
        await oai.models.retrieve("gpt-2")
    assert caught.value.code == "model_not_found"


# --- Anthropic SDK -----------------------------------------------------------------------


async def test_messages_json(sim: RunningSimulator, claude: anthropic.AsyncAnthropic) -> None:
    sim.config.cached_fraction = 0.5
    sim.config.cache_write_tokens = 2
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "Say hello to the team"}],
    }
    message = await claude.messages.create(**body)
    assert message.content[0].type == "text" and message.content[0].text == reply_text(16)
    assert message.stop_reason == "end_turn"
    assert message.usage.to_dict() == expected_usage(MESSAGES, body, sim.config)
    assert message.usage.cache_read_input_tokens == 7
    assert message._request_id is not None and message._request_id.startswith("req_")


async def test_messages_stream(sim: RunningSimulator, claude: anthropic.AsyncAnthropic) -> None:
    body: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi you"}]}],
    }
    headers = {"x-sim-cached-tokens": "3"}
    async with claude.messages.stream(**body, extra_headers=headers) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == reply_text(5)
    assert final.stop_reason == "max_tokens"
    assert final.usage.to_dict() == expected_usage(MESSAGES, body, headers=headers)


async def test_messages_stream_framing(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    body = {"model": "claude", "max_tokens": 2, "stream": True, "messages": CHAT_BODY["messages"]}
    async with http.post(sim.url + "/v1/messages", json=body) as resp:
        assert resp.headers["request-id"].startswith("req_")
        raw = await resp.read()
    events = sse_events(raw)
    assert all(json.loads(data)["type"] == name for name, data in events)
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = json.loads(events[0][1])["message"]["usage"]
    assert start["output_tokens"] == 1
    assert start["input_tokens"] == expected_usage(MESSAGES, body)["input_tokens"]
    assert json.loads(events[6][1])["usage"] == {"output_tokens": 2}


# --- raw SSE framing and include_usage ---------------------------------------------------


@pytest.mark.parametrize("include_usage", [False, True])
async def test_chat_sse_framing(
    sim: RunningSimulator, http: aiohttp.ClientSession, include_usage: bool
) -> None:
    body: dict[str, Any] = {**CHAT_BODY, "stream": True, "max_tokens": 2}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    async with http.post(sim.openai_url + "/chat/completions", json=body) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        raw = await resp.read()
    events = sse_events(raw)
    assert all(name is None for name, _ in events)
    assert events[-1][1] == "[DONE]"
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    if include_usage:
        assert all("usage" in c and c["usage"] is None for c in chunks[:-1])
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == expected_usage(CHAT, body)
    else:
        assert all("usage" not in c for c in chunks)
        assert len(chunks) == 2 + 2


async def test_omit_usage_even_when_requested(
    sim: RunningSimulator, oai: openai.AsyncOpenAI
) -> None:
    stream = await oai.chat.completions.create(
        **CHAT_BODY,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-sim-omit-usage": "true"},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks and all(chunk.choices and chunk.usage is None for chunk in chunks)


# --- injected errors -------------------------------------------------------------------


async def test_429_openai(sim: RunningSimulator, oai: openai.AsyncOpenAI) -> None:
    headers = {"x-sim-status": "429", "x-sim-retry-after-ms": "1500"}
    with pytest.raises(openai.RateLimitError) as caught:
        await oai.chat.completions.create(**CHAT_BODY, extra_headers=headers)
    error = caught.value
    assert error.code == "rate_limit_exceeded" and error.type == "requests"
    assert error.response.headers["retry-after-ms"] == "1500"
    assert error.response.headers["retry-after"] == "2"
    assert error.response.headers["x-request-id"] == error.request_id
    assert set(error.response.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
async def test_status_openai(
    oai: openai.AsyncOpenAI, status: int, exception: type[openai.APIStatusError]
) -> None:
    with pytest.raises(exception) as caught:
        await oai.embeddings.create(
            model="m", input="x", extra_headers={"x-sim-status": str(status)}
        )
    assert caught.value.status_code == status


async def test_status_anthropic(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    body = {"model": "claude", "max_tokens": 5, "messages": CHAT_BODY["messages"]}
    for status, kind in [(429, "rate_limit_error"), (529, "overloaded_error"), (500, "api_error")]:
        async with http.post(
            sim.url + "/v1/messages", json=body, headers={"x-sim-status": str(status)}
        ) as resp:
            payload = await resp.json()
            assert resp.status == status
            assert payload == {
                "type": "error",
                "error": {"type": kind, "message": payload["error"]["message"]},
                "request_id": resp.headers["request-id"],
            }
            assert ("retry-after" in resp.headers) == (status != 500)


async def test_anthropic_sdk_error(claude: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.OverloadedError):
        await claude.messages.create(
            model="claude",
            max_tokens=5,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-sim-status": "529"},
        )


async def test_fail_first_then_succeed(sim: RunningSimulator) -> None:
    headers = {
        "x-sim-fail-first": "2",
        "x-sim-status": "429",
        "x-sim-key": "retry-test",
        "x-sim-retry-after-ms": "1",
    }
    async with openai.AsyncOpenAI(base_url=sim.openai_url, api_key="k", max_retries=2) as client:
        completion = await client.chat.completions.create(**CHAT_BODY, extra_headers=headers)
    assert completion.choices[0].message.content == reply_text(16)
    retries = [r.headers["x-stainless-retry-count"] for r in sim.state.requests]
    assert retries == ["0", "1", "2"]
    assert sim.state.attempts == {"retry-test": 3}
    assert sim.state.served == 3


async def test_invalid_requests(sim: RunningSimulator, oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await oai.chat.completions.create(model="gpt-4o", messages=[])
    assert caught.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as caught:
        await oai.chat.completions.create(**CHAT_BODY, extra_headers={"x-sim-statuz": "500"})
    assert "x-sim-statuz" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        await oai.chat.completions.create(**CHAT_BODY, extra_headers={"x-sim-status": "soon"})
    assert caught.value.param == "x-sim-status"


async def test_unknown_path_and_bad_json(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(sim.openai_url + "/nope", data=b"{}") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "unknown_url"
    async with http.post(sim.openai_url + "/chat/completions", data=b"{not json") as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["type"] == "invalid_request_error"
    assert [r.json for r in sim.state.requests] == [{}, None]
    assert sim.state.requests[1].body == b"{not json"


async def test_api_key(sim: RunningSimulator, claude: anthropic.AsyncAnthropic) -> None:
    sim.config.api_key = "sk-upstream"
    with pytest.raises(anthropic.AuthenticationError):
        await claude.messages.create(
            model="claude", max_tokens=1, messages=[{"role": "user", "content": "hi"}]
        )
    async with openai.AsyncOpenAI(base_url=sim.openai_url, api_key="sk-upstream") as client:
        assert (await client.models.list()).data


# --- transport faults -------------------------------------------------------------------


async def test_reset_mid_stream(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    body = {**CHAT_BODY, "stream": True}
    received = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(
            sim.openai_url + "/chat/completions", json=body, headers={"x-sim-reset-after": "3"}
        ) as resp:
            assert resp.status == 200
            async for piece in resp.content.iter_any():
                received += piece
    assert len(sse_events(received)) == 3
    assert sim.state.served == 0
    await eventually(lambda: sim.state.in_flight == 0)


async def test_reset_mid_stream_sdk(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(
        **CHAT_BODY, stream=True, extra_headers={"x-sim-reset-after": "4"}
    )
    seen = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            seen.append(chunk)
    assert len(seen) == 4


async def test_reset_before_response(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.post(
            sim.openai_url + "/embeddings",
            json={"model": "m", "input": "x"},
            headers={"x-sim-reset-after": "0", "Connection": "close"},
        ) as resp:
            await resp.read()


async def test_hang_until_client_gives_up(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    async def hanging() -> None:
        async with http.post(
            sim.openai_url + "/chat/completions", json=CHAT_BODY, headers={"x-sim-hang": "1"}
        ) as resp:
            await resp.read()

    tasks = [asyncio.create_task(hanging()) for _ in range(3)]
    await eventually(lambda: sim.state.in_flight == 3)
    assert not any(task.done() for task in tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await eventually(lambda: sim.state.in_flight == 0)
    assert sim.state.max_in_flight == 3 and sim.state.served == 0


async def test_malformed_json_and_sse(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    url = sim.openai_url + "/chat/completions"
    async with http.post(url, json=CHAT_BODY, headers={"x-sim-malformed": "1"}) as resp:
        assert resp.status == 200
        with pytest.raises(ValueError):
            json.loads(await resp.read())
    body = {**CHAT_BODY, "stream": True}
    async with http.post(url, json=body, headers={"x-sim-malformed": "yes"}) as resp:
        events = sse_events(await resp.read())
    json.loads(events[0][1])
    with pytest.raises(ValueError):
        json.loads(events[1][1])
    assert events[-1][1] == "[DONE]"


@pytest.mark.parametrize("chunk_delay_ms", ["0", "1"])
async def test_gzip(sim: RunningSimulator, oai: openai.AsyncOpenAI, chunk_delay_ms: str) -> None:
    headers = {"x-sim-gzip": "true", "x-sim-chunk-delay-ms": chunk_delay_ms}
    raw = await oai.chat.completions.with_raw_response.create(**CHAT_BODY, extra_headers=headers)
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.parse().choices[0].message.content == reply_text(16)
    stream = await oai.chat.completions.create(
        **CHAT_BODY, stream=True, stream_options={"include_usage": True}, extra_headers=headers
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.to_dict() == expected_usage(CHAT, CHAT_BODY)
    assert sim.state.served == 2


async def test_client_leaves_mid_stream(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    body = {**CHAT_BODY, "stream": True}
    headers = {"x-sim-chunk-delay-ms": "20"}
    async with http.post(sim.openai_url + "/chat/completions", json=body, headers=headers) as r:
        await r.content.readuntil(b"\n\n")
        r.close()
    await eventually(lambda: sim.state.in_flight == 0)
    assert sim.state.served == 0


async def test_response_bytes(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    url = sim.openai_url + "/chat/completions"
    size = 2 * 1024 * 1024
    async with http.post(url, json=CHAT_BODY, headers={"x-sim-response-bytes": str(size)}) as r:
        body = await r.read()
    assert len(body) == size
    assert json.loads(body)["usage"] == expected_usage(CHAT, CHAT_BODY)
    stream_body = {**CHAT_BODY, "stream": True}
    async with http.post(url, json=stream_body, headers={"x-sim-response-bytes": str(size)}) as r:
        raw = await r.read()
    assert len(raw) >= size
    assert sse_events(raw)[-1][1] == "[DONE]"


async def test_chunk_delay_and_latency(oai: openai.AsyncOpenAI) -> None:
    headers = {"x-sim-latency-ms": "5", "x-sim-chunk-delay-ms": "1"}
    stream = await oai.chat.completions.create(
        **CHAT_BODY, max_tokens=4, stream=True, extra_headers=headers
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == reply_text(4)


# --- state: recording, concurrency, live config ----------------------------------------


async def test_recording(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    raw_body = b'{"model": "m", "input": "x"}'
    async with http.post(
        sim.openai_url + "/embeddings",
        data=raw_body,
        headers={"X-Agent-Identity": "name=a", "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 200
    [recorded] = sim.state.requests
    assert (recorded.method, recorded.path) == ("POST", "/v1/embeddings")
    assert recorded.headers["x-agent-identity"] == "name=a"
    assert recorded.body == raw_body and recorded.json == {"model": "m", "input": "x"}
    assert sim.state.received == sim.state.served == 1
    async with http.get(sim.url + "/_sim/stats") as resp:
        assert (await resp.json())["served"] == 1
    sim.state.reset()
    assert sim.state.requests == [] and sim.state.received == 0


async def test_concurrency_cap(sim: RunningSimulator, oai: openai.AsyncOpenAI) -> None:
    sim.config.max_concurrency = 2
    sim.config.latency_ms = 20
    results = await asyncio.gather(*[oai.embeddings.create(model="m", input="x") for _ in range(6)])
    assert len(results) == 6
    assert sim.state.max_in_flight == 2
    assert sim.state.in_flight == 0 and sim.state.waiting == 0


async def test_live_config_change(sim: RunningSimulator, oai: openai.AsyncOpenAI) -> None:
    sim.config.completion_tokens = 3
    completion = await oai.chat.completions.create(**CHAT_BODY)
    assert completion.choices[0].message.content == reply_text(3)
    assert completion.usage is not None
    assert completion.usage.to_dict() == expected_usage(CHAT, CHAT_BODY, sim.config)


async def test_app_factory_under_test_server(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(SimulatorConfig(completion_tokens=2)))
    async with client.post("/v1/chat/completions", json=CHAT_BODY) as resp:
        assert (await resp.json())["choices"][0]["message"]["content"] == reply_text(2)
    assert client.app[SIMULATOR].served == 1


async def test_hang_under_test_server(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app())
    state = client.app[SIMULATOR]
    task = asyncio.create_task(client.post("/v1/models", headers={"x-sim-hang": "on"}))
    await eventually(lambda: state.in_flight == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: state.in_flight == 0)


@pytest.mark.slow
def test_standalone_process() -> None:
    command = [sys.executable, "-m", "agentctl.simulator", "--port", "0", "--models", "a,b", "c"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")
            with openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as client:
                assert [m.id for m in client.models.list().data] == ["a", "b", "c"]
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()

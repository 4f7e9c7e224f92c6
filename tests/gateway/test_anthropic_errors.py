"""On /v1/messages the gateway's own errors are Anthropic-shaped (the official SDK reads them)."""

from __future__ import annotations

import anthropic
import pytest

from agentctl.errors import GatewayError
from tests.harness import IDENTITY, GatewayHarness

MSG = [{"role": "user", "content": "tell me three things about the sea"}]


def client(gateway: GatewayHarness, identity: str = IDENTITY) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=gateway.url,
        api_key="sk-ant-client",
        default_headers={"X-Agent-Identity": identity},
        max_retries=0,
    )


async def test_a_refusal_on_messages_is_in_anthropics_envelope(gateway: GatewayHarness) -> None:
    bad = client(gateway, "name=bot; owner")  # malformed: a key without a value
    with pytest.raises(anthropic.BadRequestError) as err:
        await bad.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=MSG)  # type: ignore[arg-type]
    body = err.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "invalid_agent_identity"  # the OpenAI fields ride along
    [rec] = await gateway.records()
    assert (rec["status"], rec["rule_id"]) == (400, "invalid_agent_identity")
    assert rec["endpoint"] == "/v1/messages"


async def test_a_stream_cut_short_on_messages_raises_in_the_sdk(gateway: GatewayHarness) -> None:
    # Regression: the gateway's mid-stream error was an OpenAI `data:` event, which the
    # Anthropic SDK ignores; the client saw a stream that simply stopped.
    events = []
    with pytest.raises(anthropic.APIStatusError) as err:
        async with client(gateway).messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=20,
            messages=MSG,  # type: ignore[arg-type]
            extra_headers={"x-sim-reset-after": "3"},
        ) as stream:
            async for event in stream:
                events.append(event.type)
    assert events[0] == "message_start"
    body = err.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["code"] == "upstream_reset"
    [rec] = await gateway.records()
    assert rec["outcome"] == "upstream_error"


def test_the_openai_shape_elsewhere_and_request_too_large_on_messages() -> None:
    err = GatewayError(413, "body_too_large", "too big")
    assert err.body("/v1/chat/completions") == {
        "error": {"message": "too big", "type": "invalid_request_error", "param": None,
                  "code": "body_too_large"}
    }  # fmt: skip
    assert err.body("/v1/messages") == {
        "type": "error",
        "error": {"message": "too big", "type": "request_too_large", "param": None,
                  "code": "body_too_large"},
    }  # fmt: skip
    assert err.body("/v1/messagesx")["error"]["type"] == "invalid_request_error"

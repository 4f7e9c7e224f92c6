"""OpenTelemetry spans through a real gateway, read back from the SDK's in-memory exporter.

The spans go through the process-wide tracer provider (`tracing.exporter: global`, what
`opentelemetry-instrument agentctl serve` would use); OpenTelemetry lets a process set
that provider once, so one is installed for the whole session.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

pytest.importorskip(
    "opentelemetry.sdk",
    reason="opentelemetry-sdk is not installed (pip install 'agentctl[otel]' to run these)",
)

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

from agentctl.config import TracingSettings
from agentctl.errors import ConfigError
from agentctl.money import PICO
from agentctl.tracing import Tracer
from tests.gateway.support import MESSAGES, eventually, post
from tests.harness import IDENTITY, GatewayHarness

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
ON = TracingSettings(enabled=True, exporter="global")


@pytest.fixture(scope="session")
def exporter() -> InMemorySpanExporter:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)
    return memory


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    exporter.clear()
    yield exporter
    exporter.clear()


async def ours(memory: InMemorySpanExporter, count: int = 1) -> list[ReadableSpan]:
    """The gateway's spans (SDK clients may add their own), once `count` have ended: a
    span ends after settlement, which runs after the client already has its response."""

    async def ended() -> list[ReadableSpan]:
        found = [
            s
            for s in memory.get_finished_spans()
            if s.instrumentation_scope is not None and s.instrumentation_scope.name == "agentctl"
        ]
        return found if len(found) >= count else []

    found: list[ReadableSpan] = await eventually(ended, within=10)
    assert len(found) == count
    return found


async def only(memory: InMemorySpanExporter) -> ReadableSpan:
    return (await ours(memory))[0]


def parsed(traceparent: str) -> tuple[str, str]:
    _, trace_id, span_id, _ = traceparent.split("-")
    return trace_id, span_id


async def test_one_client_span_with_genai_attributes(
    gateway: GatewayHarness, spans: InMemorySpanExporter
) -> None:
    await gateway.restart(tracing=ON)
    client = gateway.aclient()
    resp = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        max_tokens=40,
        extra_headers={"traceparent": TRACEPARENT, "x-sim-cached-tokens": "2"},
    )
    span = await only(spans)
    [rec] = await gateway.records()
    assert span.name == "chat gpt-4o-mini" and span.kind is SpanKind.CLIENT
    assert span.parent is not None and span.parent.span_id == int(CLIENT_SPAN, 16)
    assert span.context.trace_id == int(CLIENT_TRACE, 16)
    attrs: dict[str, Any] = dict(span.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.request.max_tokens"] == 40
    assert attrs["gen_ai.usage.input_tokens"] == resp.usage.prompt_tokens
    assert attrs["gen_ai.usage.output_tokens"] == resp.usage.completion_tokens
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 2
    assert attrs["gen_ai.agent.name"] == "bot-a"
    assert attrs["agentctl.agent.owner"] == "team-ml"
    assert attrs["agentctl.agent.purpose"] == "production"
    assert attrs["agentctl.cost.pico"] == rec["cost_pico"] > 0
    assert attrs["agentctl.cost.usd"] == rec["cost_pico"] / PICO
    assert attrs["agentctl.request_id"] == resp._request_id
    assert span.status.status_code is StatusCode.UNSET

    upstream = gateway.sim.state.requests[-1].headers
    trace_id, span_id = parsed(upstream["traceparent"])
    assert (trace_id, span_id) == (CLIENT_TRACE, format(span.context.span_id, "016x"))


async def test_stream_span_covers_the_whole_stream(
    gateway: GatewayHarness, spans: InMemorySpanExporter
) -> None:
    await gateway.restart(tracing=ON)
    client = gateway.aclient()
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    _ = [chunk async for chunk in stream]
    span = await only(spans)
    [rec] = await gateway.records()
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.usage.output_tokens"] == rec["completion_tokens"] > 0
    assert attrs["gen_ai.response.time_to_first_chunk"] > 0
    assert span.parent is None  # no client context: a new trace
    trace_id, _ = parsed(gateway.sim.state.requests[-1].headers["traceparent"])
    assert trace_id == format(span.context.trace_id, "032x")


async def test_anthropic_and_embeddings_spans(
    gateway: GatewayHarness, spans: InMemorySpanExporter
) -> None:
    await gateway.restart(tracing=ON)
    claude = anthropic.AsyncAnthropic(
        base_url=gateway.url, api_key="k", default_headers={"X-Agent-Identity": IDENTITY}
    )
    msg = await claude.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=MESSAGES)
    await gateway.aclient().embeddings.create(model="text-embedding-3-small", input="a b")
    by_name = {s.name: s for s in await ours(spans, 2)}
    chat = by_name["chat claude-sonnet-4-5"]
    assert chat.attributes["gen_ai.provider.name"] == "anthropic"  # type: ignore[index]
    assert chat.attributes["gen_ai.usage.output_tokens"] == msg.usage.output_tokens  # type: ignore[index]
    assert by_name["embeddings text-embedding-3-small"].attributes["gen_ai.operation.name"] == (  # type: ignore[index]
        "embeddings"
    )


async def test_refusal_is_an_error_span_and_nothing_reaches_the_upstream(
    gateway: GatewayHarness, spans: InMemorySpanExporter
) -> None:
    await gateway.restart(tracing=ON)
    sent = len(gateway.sim.state.requests)
    resp = await post(gateway, **{"X-Agent-Identity": "name=Bad Name"})
    assert resp.status_code == 400
    span = await only(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "invalid_agent_identity"  # type: ignore[index]
    assert len(gateway.sim.state.requests) == sent


async def test_upstream_error_marks_the_span(
    gateway: GatewayHarness, spans: InMemorySpanExporter
) -> None:
    await gateway.restart(tracing=ON)
    resp = await post(gateway, **{"x-sim-status": "500"})
    assert resp.status_code == 500
    span = await only(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["http.response.status_code"] == 500  # type: ignore[index]


async def test_tracing_off_leaves_the_client_context_alone(
    gateway: GatewayHarness, spans: InMemorySpanExporter
) -> None:
    assert gateway.gw.tracer is None
    await post(gateway, traceparent=TRACEPARENT, tracestate="k=v")
    upstream = gateway.sim.state.requests[-1].headers
    assert upstream["traceparent"] == TRACEPARENT and upstream["tracestate"] == "k=v"
    assert not [s for s in spans.get_finished_spans() if s.instrumentation_scope.name == "agentctl"]


def test_missing_exporter_package_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(ConfigError, match=r"agentctl\[otel\]"):
        Tracer.configure(TracingSettings(enabled=True, exporter="otlp"))
    assert Tracer.configure(TracingSettings()) is None


def test_console_exporter_builds_and_closes() -> None:
    tracer = Tracer.configure(TracingSettings(enabled=True, exporter="console"))
    assert tracer is not None
    tracer.close()

"""OpenTelemetry spans for proxied requests (extra `agentctl[otel]`, off unless
`tracing.enabled`).

One CLIENT span per proxied request, named `"{gen_ai.operation.name} {model}"`
(`chat gpt-4o`), child of the client's `traceparent` when it sent one, covering the
whole call including a relayed stream. Towards the upstream our span's W3C trace
context replaces the client's (with tracing off, the client's headers pass untouched).
Attributes follow the GenAI semantic conventions (0.66b2 names: `gen_ai.provider.name`,
not the deprecated `gen_ai.system`); identity and cost, which have no standard
attribute, are `gen_ai.agent.name` plus `agentctl.*`. Input tokens include cached
reads and cache writes, as the conventions ask.

opentelemetry is imported only when tracing is configured; with tracing off the hooks
cost one `ContextVar.get()`. The active span travels in a context variable set by the
app's middleware, which is how the header injection in `upstream.py` and `annotate()`
(chained behind `Metrics.observe` at settlement) find it without pipeline parameters.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from agentctl import __version__
from agentctl.config import TracingSettings
from agentctl.errors import ConfigError
from agentctl.money import PICO

if TYPE_CHECKING:
    from agentctl.gateway.call import Call

OPERATIONS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "text_completion",
    "/v1/embeddings": "embeddings",
    "/v1/responses": "chat",
    "/v1/messages": "chat",
}
_ACTIVE: ContextVar[tuple[Tracer, Any] | None] = ContextVar("agentctl_span", default=None)


def inject_context(headers: MutableMapping[str, str]) -> None:
    """Put the active span's `traceparent` (and `tracestate`) into upstream headers."""
    active = _ACTIVE.get()
    if active is not None:
        active[0].inject(active[1], headers)


def _missing(what: str) -> ConfigError:
    return ConfigError(
        f"tracing.enabled needs {what}: pip install 'agentctl[otel]' "
        "(or set tracing.enabled: false)"
    )


class Tracer:
    def __init__(self, tracer: Any, provider: Any = None) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._tracer = tracer
        self._provider = provider  # ours to shut down; None for the process's global one
        self._propagator = TraceContextTextMapPropagator()
        self._kind, self._in_context = SpanKind.CLIENT, set_span_in_context
        self._error = lambda text: Status(StatusCode.ERROR, text)

    @classmethod
    def configure(cls, settings: TracingSettings) -> Tracer | None:
        if not settings.enabled:
            return None
        try:
            from opentelemetry import trace
        except ImportError:
            raise _missing("opentelemetry-api") from None
        if settings.exporter == "global":
            return cls(trace.get_tracer("agentctl", __version__))
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
        except ImportError:
            raise _missing("opentelemetry-sdk") from None
        exporter: Any
        if settings.exporter == "console":
            exporter = ConsoleSpanExporter()
        else:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
            except ImportError:
                raise _missing("opentelemetry-exporter-otlp-proto-http") from None
            exporter = OTLPSpanExporter(endpoint=settings.endpoint)
        resource = Resource.create({"service.name": settings.service_name})
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider.get_tracer("agentctl", __version__), provider)

    @contextmanager
    def span(self, path: str, headers: Mapping[str, str]) -> Iterator[None]:
        """The request's span, current for the duration of the handler."""
        parent = self._propagator.extract(headers)
        operation = OPERATIONS.get(path, "chat")
        with self._tracer.start_as_current_span(operation, context=parent, kind=self._kind) as span:
            token = _ACTIVE.set((self, span))
            try:
                yield
            finally:
                _ACTIVE.reset(token)

    def inject(self, span: Any, headers: MutableMapping[str, str]) -> None:
        if not span.get_span_context().is_valid:
            return  # no SDK behind the global API: leave the client's context alone
        for name in ("traceparent", "tracestate"):
            if name in headers:
                del headers[name]  # every copy, whatever its case
        self._propagator.inject(headers, context=self._in_context(span))

    def annotate(self, call: Call) -> None:
        """At settlement: name the span after the model and attach what the call became."""
        active = _ACTIVE.get()
        if active is None or active[0] is not self:
            return
        span = active[1]
        attrs = attributes(call)
        span.update_name(f"{attrs['gen_ai.operation.name']} {attrs['gen_ai.request.model']}")
        span.set_attributes(attrs)
        if "error.type" in attrs:
            span.set_status(self._error(call.message or str(attrs["error.type"])))

    def close(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()


def attributes(call: Call) -> dict[str, Any]:
    facts = call.facts
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": OPERATIONS.get(call.path, "chat"),
        "gen_ai.request.model": (facts.model if facts else "") or "unknown",
        "agentctl.request_id": call.request_id,
        "agentctl.outcome": call.outcome,
    }
    if call.provider:
        attrs["gen_ai.provider.name"] = call.provider
    if call.upstream:
        attrs["agentctl.upstream"] = call.upstream
    if call.status:
        attrs["http.response.status_code"] = call.status
    if facts is not None:
        attrs["gen_ai.request.stream"] = facts.stream
        if facts.max_output_tokens is not None:
            attrs["gen_ai.request.max_tokens"] = facts.max_output_tokens
    ident = call.identity
    if ident is not None:
        attrs["gen_ai.agent.name"] = ident.name
        attrs["agentctl.agent.owner"] = ident.owner
        attrs["agentctl.agent.purpose"] = ident.purpose
        attrs["agentctl.agent.verification"] = ident.verification
    usage = call.usage
    if usage is not None:
        attrs["gen_ai.usage.input_tokens"] = usage.prompt_tokens
        attrs["gen_ai.usage.output_tokens"] = usage.completion_tokens
        attrs["gen_ai.usage.cache_read.input_tokens"] = usage.cached_tokens
        attrs["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
        attrs["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
        attrs["agentctl.usage.source"] = usage.source
    if call.cost_pico is not None:
        attrs["agentctl.cost.usd"] = call.cost_pico / PICO  # display; the pico value is exact
        attrs["agentctl.cost.pico"] = call.cost_pico
    if call.ttfb is not None and facts is not None and facts.stream:
        attrs["gen_ai.response.time_to_first_chunk"] = call.ttfb
    if call.outcome != "served" or call.status >= 400:
        attrs["error.type"] = call.rule_id or call.outcome
    return attrs

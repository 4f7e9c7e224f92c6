"""A SIMULATED OpenAI/Anthropic-compatible upstream. It never calls a real provider.

`agentctl demo`, the test suite and the benchmarks put it behind the gateway. It speaks
the real wire formats (the official `openai` and `anthropic` SDKs parse everything it
sends, streams included) with deterministic token counts, and injects faults on demand.

Endpoints: `POST /v1/chat/completions`, `/v1/completions`, `/v1/embeddings`,
`/v1/responses`, `/v1/messages` (Anthropic); `GET /v1/models[/{id}]`; `GET /_sim/stats`
(counters as JSON, for a simulator in another process). Any other path is an
OpenAI-shaped 404. OpenAI responses carry `x-request-id`, Anthropic ones `request-id`;
all carry `x-ratelimit-*`.

Token accounting: see `accounting` (`expected_usage(endpoint, body, config, headers)`
returns the exact usage object a request will get).

Behaviour: every field of `Behaviour` is set globally on `SimulatorConfig` (mutable, at
`app[SIMULATOR].config`, read on every request) or per request by its `x-sim-*` header:

- `x-sim-latency-ms`: wait before the first byte (every response, errors included).
- `x-sim-chunk-delay-ms`: wait between SSE events.
- `x-sim-status`: answer with this error status in the endpoint's error shape; 429, 503
  and 529 add `retry-after-ms` and `retry-after` (seconds, rounded up).
- `x-sim-fail-first`: only the first N attempts per `x-sim-key` fail (with
  `x-sim-status`, default 503); later attempts succeed.
- `x-sim-key`: the counter `x-sim-fail-first` uses (default: one shared counter).
- `x-sim-retry-after-ms`: the retry headers' value (default 100; 0 omits them).
- `x-sim-hang`: accept the request and never answer, until the client disconnects.
- `x-sim-reset-after`: TCP reset after k SSE events (streams; the headers go first) or
  k body bytes (JSON; 0 resets before any byte).
- `x-sim-malformed`: cut the JSON body, or the second SSE event's JSON, in half.
- `x-sim-omit-usage`: no usage chunk even with `include_usage`; `usage: null` in the
  responses API.
- `x-sim-gzip`: `Content-Encoding: gzip` body (SSE is flushed per event).
- `x-sim-response-bytes`: pad a JSON body (extra `sim_padding` field) or a stream (SSE
  comment lines before the last event) to this many bytes.
- `x-sim-completion-tokens`: output tokens per choice when the request's max allows (16).
- `x-sim-cached-tokens`, `x-sim-cached-fraction`: cached prompt tokens, fixed + floor(
  prompt * fraction).
- `x-sim-cache-write-tokens`: Anthropic `cache_creation_input_tokens`.
- `x-sim-reasoning-tokens`: reasoning tokens per choice for reasoning models (8).
- `x-sim-reasoning-models`: comma-separated globs naming reasoning models (`o*`).

Booleans accept 1/0, true/false, yes/no, on/off. An unknown `x-sim-*` header or a bad
value is a 400. `SimulatorConfig` adds server-wide settings: `models` (for
`/v1/models`), `embedding_dimensions`, `max_concurrency` (excess requests wait, FIFO),
`api_key` (401 without it) and `record_requests`.

The state (`SimulatorState`) records every request (`RecordedRequest`: method, path,
case-insensitive headers copy, raw body, parsed JSON or None) and counts `received`,
`served` (responses delivered in full), `in_flight`, `max_in_flight` and `waiting`.

Run standalone: `python -m agentctl.simulator --port 8500`; it prints its URL.
"""

from agentctl.simulator.accounting import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    MESSAGE_OVERHEAD,
    MESSAGES,
    RESPONSES,
    VOCABULARY,
    Counts,
    Endpoint,
    count,
    expected_usage,
    reply_text,
)
from agentctl.simulator.behaviour import HEADERS, Behaviour, InvalidRequest, SimulatorConfig
from agentctl.simulator.openai import embedding_vector
from agentctl.simulator.server import (
    SIMULATOR,
    RecordedRequest,
    RunningSimulator,
    SimulatorState,
    create_app,
    start_simulator,
)

__all__ = [
    "CHAT",
    "COMPLETIONS",
    "EMBEDDINGS",
    "HEADERS",
    "MESSAGES",
    "MESSAGE_OVERHEAD",
    "RESPONSES",
    "SIMULATOR",
    "VOCABULARY",
    "Behaviour",
    "Counts",
    "Endpoint",
    "InvalidRequest",
    "RecordedRequest",
    "RunningSimulator",
    "SimulatorConfig",
    "SimulatorState",
    "count",
    "create_app",
    "embedding_vector",
    "expected_usage",
    "reply_text",
    "start_simulator",
]

"""Usage metering for streamed responses, and the rules for estimating it.

`StreamMeter` sits between the upstream and the client. It forwards every SSE event
byte for byte, except the usage-only chunk the gateway injected (via
`stream_options.include_usage`) for a client that did not ask for it. It only
JSON-parses events that can carry usage (a `"usage"` that is not `null`, or the
Anthropic `message_start`/`message_delta` events), so long streams stay cheap.

Usage shapes: OpenAI chat/completions put it in the last chunk; the Responses API
in the terminal `response.completed|incomplete|failed` event; Anthropic gives input
in `message_start` and a *cumulative* output count in each `message_delta` (the last
one wins, never summed).

Estimation (decision recorded in docs/decisions.md): when the upstream sends no
usage or the client disconnects, the upstream request is aborted (draining it would
keep the provider generating, and billing, for nobody) and usage is estimated:
input from the request's conservative size estimate, output as one token per content
event seen. The record is flagged `usage_source = "estimated"`.
"""

from __future__ import annotations

import re
from typing import Any

from agentctl import codec
from agentctl.facts import MESSAGES, RESPONSES
from agentctl.sse import EventSplitter, parse_event
from agentctl.usage import Usage, from_anthropic, from_openai, from_responses

_NULL_USAGE = re.compile(rb'"usage"\s*:\s*null')
_TERMINAL = (b"response.completed", b"response.incomplete", b"response.failed")
_SHORT = 64  # the [DONE] sentinel and an error event's opening fit in this many bytes


class StreamMeter:
    __slots__ = (
        "_anthropic",
        "_api",
        "_hide_usage_chunk",
        "_raw_anthropic",
        "_splitter",
        "content_events",
        "error",
        "terminal",
        "usage",
    )

    def __init__(self, api: str, *, hide_usage_chunk: bool = False) -> None:
        self._api = api
        self._anthropic = api == MESSAGES
        self._hide_usage_chunk = hide_usage_chunk
        self._splitter = EventSplitter()
        self._raw_anthropic: dict[str, Any] = {}
        self.usage: Usage | None = None
        self.content_events = 0
        self.error: str | None = None
        # The stream's last event has been seen ([DONE], a terminal Responses event,
        # Anthropic message_stop): usage is final before that event reaches the client.
        self.terminal = False

    def feed(self, chunk: bytes) -> bytes:
        """Bytes to forward to the client for this network chunk."""
        events = self._splitter.feed(chunk)
        if len(events) == 1:
            return events[0] if self._inspect(events[0]) else b""
        if not events:
            return b""
        out = []
        for raw in events:
            if self._inspect(raw):
                out.append(raw)
        return b"".join(out) if len(out) != 1 else out[0]

    def finish(self) -> bytes:
        """Flush an unterminated last event (forwarded as is)."""
        rest = self._splitter.remainder()
        if rest.strip():
            self._inspect(rest)
        return rest

    def _inspect(self, raw: bytes) -> bool:
        """Meter one event; return False to drop it from the client stream."""
        if self._anthropic:
            if b"message_stop" in raw:
                self.terminal = True
            elif b"message_start" in raw or b"message_delta" in raw:
                self._anthropic_usage(raw)
            elif b"content_block_delta" in raw:
                self.content_events += 1
            elif b'"error"' in raw:
                self.error = "upstream error event"
            return True
        # The usage key, when present, ends OpenAI chunks: search from the end.
        at = raw.rfind(b'"usage"')
        if at == -1 or raw.startswith(b":null", at + 7) or _NULL_USAGE.match(raw, at):
            if len(raw) < _SHORT and _is_done(raw):
                self.terminal = True
            elif b"data" in raw:
                self.content_events += 1
                if b'"error"' in raw[:_SHORT] and raw.lstrip().startswith(b'data: {"error"'):
                    self.error = "upstream error event"
            return True
        data = _json(raw)
        if data is None:
            return True
        if self._api == RESPONSES:
            if any(t in raw for t in _TERMINAL):
                self.terminal = True
                response = data.get("response")
                if isinstance(response, dict):
                    self.usage = from_responses(response.get("usage")) or self.usage
            return True
        usage = from_openai(data.get("usage"))
        if usage is not None:
            self.usage = usage
            if self._hide_usage_chunk and data.get("choices") == []:
                return False
        return True

    def _anthropic_usage(self, raw: bytes) -> None:
        data = _json(raw)
        if data is None:
            return
        kind = data.get("type")
        if kind == "message_start":
            message = data.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            self._merge_anthropic(usage, start=True)
        elif kind == "message_delta":
            self._merge_anthropic(data.get("usage"), start=False)

    def _merge_anthropic(self, usage: Any, *, start: bool) -> None:
        if not isinstance(usage, dict):
            return
        # Start from message_start; later non-null values replace (they are cumulative).
        merged = {} if start else self._raw_anthropic
        merged.update({k: v for k, v in usage.items() if v is not None})
        self._raw_anthropic = merged
        self.usage = from_anthropic(merged)


def _is_done(raw: bytes) -> bool:
    """The `data: [DONE]` sentinel itself, not a content event that mentions it (the
    model writing "[DONE]" must not end metering before the usage chunk)."""
    return b"[DONE]" in raw and parse_event(raw)[1].strip() == b"[DONE]"


def _json(raw: bytes) -> dict[str, Any] | None:
    _, data = parse_event(raw)
    try:
        value = codec.loads(data)
    except (ValueError, RecursionError):  # an upstream's malformed or absurdly nested JSON
        return None
    return value if isinstance(value, dict) else None


def estimate(input_estimate: int, output_events: int) -> Usage:
    return Usage(
        prompt_tokens=input_estimate,
        completion_tokens=output_events,
        source="estimated",
    )

"""Opt-in storage of prompts and completions in the audit record, redacted first.

Off by default (`audit.bodies.store: false`): the audit trail then holds who, what model,
how much and what happened, never what was said. When an operator opts in, each request
record's `detail` holds `{"bodies": {"request": ..., "response": ...}}`:

- `request`: the conversational fields of the request body (`messages`, `input`,
  `prompt`, `system`, `instructions`, `tools`), strings redacted wherever they sit;
- `response`: a JSON answer's body, redacted the same way; for a stream, the text of its
  events as the client received them (redacted as text);
- each side is cut to `max_chars` characters of its JSON, marked `"truncated": true`.

Redaction (`redaction.Redactor`: emails, API keys, card numbers, custom patterns) runs
before the record is journaled, so nothing unredacted ever reaches the disk. The body is
part of the hashed record: editing a stored prompt breaks the chain like any other field.
"""

from __future__ import annotations

import json
from typing import Any

from agentctl.audit.redaction import Redactor

REQUEST_FIELDS = ("system", "instructions", "messages", "input", "prompt", "tools")


class Capture:
    """One request's bodies, gathered along the pipeline (only when capture is on)."""

    __slots__ = ("_chunks", "_size", "limit", "redactor", "request", "response")

    def __init__(self, redactor: Redactor, limit: int) -> None:
        self.redactor = redactor
        self.limit = limit
        self.request: Any = None
        self.response: Any = None
        self._chunks: list[bytes] = []
        self._size = 0

    def take_request(self, body: dict[str, Any]) -> None:
        fields = {k: body[k] for k in REQUEST_FIELDS if k in body}
        self.request = self.redactor.redact_value(fields)

    def take_response(self, raw: bytes) -> None:
        text = raw[: self.limit * 4].decode("utf-8", "replace")
        try:
            self.response = self.redactor.redact_value(json.loads(text))
        except ValueError:
            self.response = self.redactor.redact(text)

    def take_stream(self, chunk: bytes) -> None:
        """Stream bytes as forwarded; kept up to the limit, the rest only counted."""
        if self._size < self.limit * 4:
            self._chunks.append(chunk)
        self._size += len(chunk)

    def detail(self) -> str:
        response = self.response
        if response is None and self._chunks:
            text = b"".join(self._chunks).decode("utf-8", "replace")
            response = self.redactor.redact(text)
        bodies = {"request": self._cut(self.request), "response": self._cut(response)}
        return json.dumps({"bodies": bodies}, ensure_ascii=False, separators=(",", ":"))

    def _cut(self, value: Any) -> Any:
        if value is None:
            return None
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if len(text) <= self.limit:
            return value
        return {"truncated": True, "text": text[: self.limit]}

"""Errors that reach a client or an operator, each knowing how to present itself.

`GatewayError` renders as the OpenAI error shape
`{"error": {"message", "type", "param", "code"}}` with its HTTP status and headers
(on `/v1/messages` also Anthropic's `"type": "error"` envelope around the same object).
`Refusal` is a policy decision (403/429) carrying a stable rule id; `should_retry`
False becomes `x-should-retry: false` so SDKs stop retrying exhausted budgets.
`CliError` is an operator mistake: the CLI prints the message (problem and fix) and
exits with `exit_code`, never a traceback.
"""

from __future__ import annotations

import math
from typing import Any


class GatewayError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.type = type or _default_type(status)
        self.param = param
        self.headers: dict[str, str] = dict(headers or {})

    def body(self, path: str = "") -> dict[str, Any]:
        """The error object; on Anthropic's `/v1/messages` inside Anthropic's envelope
        (`"type": "error"`, its `request_too_large` for 413), which the OpenAI fields
        ride along in, so both SDKs read it."""
        error = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        if not is_anthropic(path):
            return {"error": error}
        if self.status == 413:
            error["type"] = "request_too_large"
        return {"type": "error", "error": error}


def is_anthropic(path: str) -> bool:
    """Anthropic's Messages API (and its sub-paths, e.g. count_tokens)."""
    return path == "/v1/messages" or path.startswith("/v1/messages/")


def _default_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 404:
        return "not_found_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "api_error"
    return "invalid_request_error"


class Refusal(GatewayError):
    """A policy denial. `rule_id` is stable API (audit rows, reports, scripts)."""

    def __init__(
        self,
        status: int,
        rule_id: str,
        message: str,
        *,
        retry_after: float | None = None,
        should_retry: bool | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        hdrs = dict(headers or {})
        if retry_after is not None and retry_after > 0:
            hdrs["retry-after-ms"] = str(max(1, math.ceil(retry_after * 1000)))
            hdrs["retry-after"] = str(max(1, math.ceil(retry_after)))
        if should_retry is not None:
            hdrs["x-should-retry"] = "true" if should_retry else "false"
        super().__init__(status, rule_id, message, type=type, headers=hdrs)
        self.rule_id = rule_id
        self.retry_after = retry_after


class CliError(Exception):
    """An operator-facing failure: message names the problem and the fix."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ConfigError(CliError):
    pass

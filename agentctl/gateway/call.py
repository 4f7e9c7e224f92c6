"""`Call`: everything the pipeline learns about one request, turned into its audit row."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from agentctl.facts import RequestFacts
from agentctl.identity import Identity
from agentctl.usage import Usage


@dataclass(slots=True)
class Call:
    request_id: str
    ts_us: int
    started: float  # perf_counter
    path: str
    client: str
    source: str = ""  # coarse client fingerprint for trust: address /24 + user-agent family
    identity: Identity | None = None
    facts: RequestFacts | None = None
    upstream: str = ""
    upstream_model: str = ""
    provider: str = ""
    status: int = 0
    outcome: str = "served"  # served | refused | error | interrupted
    rule_id: str | None = None
    message: str | None = None
    shadow_rules: list[str] = field(default_factory=list)
    usage: Usage | None = None
    cost_pico: int | None = None
    reserved_pico: int = 0
    ttfb: float | None = None
    finished: float | None = None
    policy_version: str = ""
    attempts: list[dict[str, Any]] = field(default_factory=list)
    forwarded: bool = False  # reached the upstream (a begin line was journaled)
    recorded: bool = False  # the audit record has been journaled
    answered: bool = False  # a stream's status line went out (a JSON answer's follows record)
    admission: Any = None
    extra_headers: dict[str, str] = field(default_factory=dict)
    capture: Any = None  # audit.capture.Capture when audit.bodies.store is on

    def mark_first_byte(self) -> None:
        if self.ttfb is None:
            self.ttfb = time.perf_counter() - self.started

    def refuse(self, status: int, code: str, message: str, *, refused: bool) -> None:
        self.status = status
        self.rule_id = code
        self.message = message
        self.outcome = "refused" if refused else "error"
        if self.cost_pico is None and not self.forwarded:
            self.cost_pico = 0  # nothing reached a provider: free, not "unpriced"

    def identity_fields(self) -> dict[str, Any]:
        ident = self.identity
        if ident is None:
            return {"agent": "", "owner": "", "purpose": "", "extensions": "", "verification": ""}
        return {
            "agent": ident.name,
            "owner": ident.owner,
            "purpose": ident.purpose,
            "extensions": "; ".join(f"{k}={v}" for k, v in ident.extensions),
            "verification": ident.verification,
            "key_id": ident.key_id,
        }

    def begin_row(self) -> dict[str, Any]:
        facts = self.facts
        return {
            "request_id": self.request_id,
            "ts_us": self.ts_us,
            **self.identity_fields(),
            "endpoint": self.path,
            "model": facts.model if facts else "",
            "upstream": self.upstream,
            "upstream_model": self.upstream_model,
            "stream": facts.stream if facts else False,
            "client": self.client,
            "policy_version": self.policy_version,
            "reserved_pico": self.reserved_pico,
            "prompt_tokens": facts.input_tokens_estimate if facts else 0,
            # An interrupted request is charged its reserved estimate.
            "cost_pico": self.reserved_pico,
        }

    def row(self) -> dict[str, Any]:
        facts = self.facts
        usage = self.usage or Usage(source="none")
        end = self.finished or time.perf_counter()
        return {
            "kind": "request",
            "request_id": self.request_id,
            "ts_us": self.ts_us,
            **self.identity_fields(),
            "endpoint": self.path,
            "model": facts.model if facts else "",
            "upstream_model": self.upstream_model,
            "upstream": self.upstream,
            "status": self.status,
            "outcome": self.outcome,
            "rule_id": self.rule_id,
            "shadow_rules": ",".join(self.shadow_rules),
            "message": self.message,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "usage_source": usage.source if self.usage is not None else "none",
            "cost_pico": self.cost_pico,
            "reserved_pico": self.reserved_pico,
            "latency_ms": round((end - self.started) * 1000, 3),
            "ttfb_ms": round(self.ttfb * 1000, 3) if self.ttfb is not None else None,
            "stream": facts.stream if facts else False,
            "client": self.client,
            "policy_version": self.policy_version,
            "attempts": json.dumps(self.attempts) if self.attempts else "",
            "detail": self.capture.detail() if self.capture is not None else None,
        }

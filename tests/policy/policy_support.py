"""Helpers imported by the policy tests: a settable clock and request facts."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from agentctl.facts import RequestFacts


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def at(text: str, zone: str = "UTC") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def chat(
    model: str = "gpt-4o-mini", max_tokens: int | None = 1000, input_tokens: int = 1000, n: int = 1
) -> RequestFacts:
    return RequestFacts(
        "chat",
        "/v1/chat/completions",
        model,
        max_output_tokens=max_tokens,
        n=n,
        input_tokens_estimate=input_tokens,
        input_tokens_bound=input_tokens,
    )

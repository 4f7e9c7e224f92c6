"""What the governor hands back: an `Admission` to settle, shadow hits, breaker trips.

`ratelimit_headers` renders OpenAI's `x-ratelimit-*` trio for requests and tokens.
The requests trio comes from the agent's rpm bucket, or when it has none from its
tightest budget window with a request limit; the tokens trio likewise from the tpm
bucket or a token-limited window. Resets are Go-style durations (`1s`, `6m0s`) as
OpenAI sends them. With no limit of a kind, that trio is omitted rather than
invented.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agentctl.counters.base import Amounts, Bucket, BucketState, WindowSpec
from agentctl.identity import Identity
from agentctl.policy.resolve import EffectivePolicy
from agentctl.policy.windows import CalendarWindow, go_duration


@dataclass(frozen=True, slots=True)
class WindowRef:
    subject: str  # "agent" | "team" | "pool"
    window: CalendarWindow
    spec: WindowSpec
    path: str  # provenance path of the budget block ("budgets.day", "team_budgets.day")


@dataclass(frozen=True, slots=True)
class ShadowHit:
    """A rule in `mode: shadow` that would have refused this request."""

    rule_id: str
    status: int
    message: str


@dataclass(frozen=True, slots=True)
class BreakerTrip:
    """A cost breaker crossed by a settle: the caller latches the agent disabled
    (when `enforced`), audits and alerts (log line, and `webhook` when set)."""

    agent: str
    owner: str
    rule_id: str  # "cost-breaker-hourly" | "cost-breaker-daily"
    window_id: str
    spent_pico: int
    threshold_pico: int
    enforced: bool
    scope: str
    message: str
    webhook: str | None = None


@dataclass
class Admission:
    identity: Identity
    policy: EffectivePolicy
    reservation_id: str
    lane: str
    model: str
    estimate: Amounts
    # output tokens per choice the estimate assumed; when the client sent no max_tokens
    # the pipeline may forward this as max_tokens so overshoot stays bounded
    output_tokens: int
    admitted_at: float
    windows: tuple[WindowRef, ...] = ()
    used: dict[str, Amounts] = field(default_factory=dict)  # window usage after reserving
    charged: tuple[Bucket, ...] = ()  # buckets this request drew from (tpm is corrected later)
    rate: tuple[tuple[str, BucketState], ...] = ()  # ("rpm"|"tpm", state)
    slot: str | None = None
    shadow: tuple[ShadowHit, ...] = ()
    settled: bool = False

    @property
    def shadow_rule_ids(self) -> list[str]:
        return [hit.rule_id for hit in self.shadow]


def _from_windows(admission: Admission, unit: str, now: float) -> tuple[int, int, float] | None:
    best: tuple[int, int, float] | None = None
    for ref in admission.windows:
        limit = ref.spec.limits.get(unit)
        if ref.subject != "agent" or limit is None:
            continue
        used = admission.used.get(ref.spec.key, Amounts()).get(unit)
        remaining = max(0, limit - used)
        if best is None or remaining < best[1]:
            best = (limit, remaining, ref.window.seconds_left(now))
    return best


def ratelimit_headers(admission: Admission, now: float | None = None) -> dict[str, str]:
    now = admission.admitted_at if now is None else now
    states = dict(admission.rate)
    headers: dict[str, str] = {}
    for kind, unit in (("rpm", "requests"), ("tpm", "tokens")):
        state = states.get(kind)
        trio: tuple[int, int, float] | None
        if state is not None:
            trio = (state.capacity, state.remaining, state.reset_after)
        else:
            trio = _from_windows(admission, unit, now)
        if trio is None:
            continue
        limit, remaining, reset = trio
        headers[f"x-ratelimit-limit-{unit}"] = str(limit)
        headers[f"x-ratelimit-remaining-{unit}"] = str(remaining)
        headers[f"x-ratelimit-reset-{unit}"] = go_duration(reset)
    return headers

"""Stable rule ids and the refusals that carry them.

Rule ids are API (audit rows, reports, scripts): never rename one. Statuses: 403 for
"not allowed" (model access, per-request caps: retrying the same request cannot
help, so `x-should-retry: false`), 429 for "over a limit". Rate and concurrency
limits carry `retry_after`; budget windows say `x-should-retry: false` unless the
window resets within a minute, in which case they carry `retry_after` instead.
Budget ids: `<hourly|daily|monthly>-budget-exceeded` for USD, with a `-tokens` or
`-requests` suffix for the other units, and a `team-` (owner aggregate) or
`unverified-` (pool of all unverified traffic) prefix for shared windows. Every
message names the scope the limit came from, the window, used, limit and reset.
"""

from __future__ import annotations

from agentctl.counters.base import Exceeded
from agentctl.errors import Refusal
from agentctl.money import usd_str
from agentctl.policy.admission import WindowRef
from agentctl.policy.resolve import EffectivePolicy
from agentctl.policy.windows import ADJECTIVE, PERIODS, go_duration

MODEL_NOT_ALLOWED = "model-not-allowed"
REQUEST_TOKEN_CAP = "request-token-cap"
REQUEST_COST_CAP = "request-cost-cap"
RATE_LIMIT_RPM = "rate-limit-rpm"
RATE_LIMIT_TPM = "rate-limit-tpm"
CONCURRENCY_LIMIT = "concurrency-limit"
BREAKER_HOURLY = "cost-breaker-hourly"
BREAKER_DAILY = "cost-breaker-daily"
UNPRICED_UNDER_USD = "unpriced-model-usd-limit"

_PREFIX = {"agent": "", "team": "team-", "pool": "unverified-"}
_SUFFIX = {"pico": "", "tokens": "-tokens", "requests": "-requests"}
_FIELD = {"pico": "usd", "tokens": "tokens", "requests": "requests"}
SOON = 60.0  # windows resetting sooner than this get retry_after instead of should_retry


def budget_rule_id(subject: str, period: str, unit: str) -> str:
    return f"{_PREFIX[subject]}{ADJECTIVE[period]}-budget-exceeded{_SUFFIX[unit]}"


RULE_IDS: tuple[str, ...] = (
    MODEL_NOT_ALLOWED,
    REQUEST_TOKEN_CAP,
    REQUEST_COST_CAP,
    RATE_LIMIT_RPM,
    RATE_LIMIT_TPM,
    CONCURRENCY_LIMIT,
    BREAKER_HOURLY,
    BREAKER_DAILY,
    UNPRICED_UNDER_USD,
    *(budget_rule_id(s, p, u) for s in _PREFIX for p in PERIODS for u in _SUFFIX),
)


def amount(unit: str, value: int) -> str:
    if unit == "pico":
        return f"${usd_str(value)}"
    return f"{value} {unit}"


def who(policy: EffectivePolicy) -> str:
    return f"agent '{policy.name}' (owner '{policy.owner}', purpose '{policy.purpose}')"


def not_allowed(rule_id: str, policy: EffectivePolicy, path: str, reason: str) -> Refusal:
    message = f"{reason} for {who(policy)}; rule from scope {policy.source(path)}"
    return Refusal(403, rule_id, message, should_retry=False)


def _whole(seconds: float) -> float:
    """Whole seconds past a minute: 'in 1h8m33s', not 'in 1h8m32.512s'."""
    return float(round(seconds)) if seconds >= 60 else seconds


def budget(
    policy: EffectivePolicy, ref: WindowRef, ex: Exceeded, now: float, *, hint: str = ""
) -> Refusal:
    """`hint` says how this request's worst case was sized; it is added when the window
    still has room, i.e. a smaller request could fit."""
    rule_id = budget_rule_id(ref.subject, ref.window.period, ex.unit)
    scope = policy.source(f"{ref.path}.{_FIELD[ex.unit]}")
    subject = {
        "agent": who(policy),
        "team": f"team '{policy.owner}' (all its agents together)",
        "pool": "all unverified agents together",
    }[ref.subject]
    win = ref.window
    left = win.seconds_left(now)
    unit_name = "USD" if ex.unit == "pico" else ex.unit
    message = (
        f"{ADJECTIVE[win.period]} {unit_name} budget exceeded for {subject}: scope {scope}, "
        f"window {win.window_id} ({win.zone}), used {amount(ex.unit, ex.used)} + this "
        f"request {amount(ex.unit, ex.requested)} > limit {amount(ex.unit, ex.limit)}; "
        f"resets at {win.reset_at().isoformat()} (in {go_duration(_whole(left))})"
    )
    if hint and ex.unit != "requests" and ex.used < ex.limit:
        message += f"; {hint}"
    if left <= SOON:
        return Refusal(429, rule_id, message, retry_after=max(left, 0.001))
    return Refusal(429, rule_id, message, should_retry=False)


def unpriced_under_usd(policy: EffectivePolicy, model: str, path: str) -> Refusal:
    message = (
        f"model {model!r} has no price, and {who(policy)} is under a USD limit "
        f"({path}, scope {policy.source(path)}) that cannot count what it cannot price; "
        "add the model under pricing.overrides in agentctl.yaml"
    )
    return Refusal(403, UNPRICED_UNDER_USD, message, should_retry=False)


def rate(
    policy: EffectivePolicy,
    kind: str,
    limit: int,
    capacity: int,
    retry: float,
    multiplier: float = 1.0,
) -> Refusal:
    rule_id = RATE_LIMIT_RPM if kind == "rpm" else RATE_LIMIT_TPM
    unit = "requests" if kind == "rpm" else "tokens"
    scope = policy.source(f"rate.{kind}")
    in_force = f"{limit} {unit} per minute"
    if multiplier != 1.0:  # the trust tier scales it: say what is in force
        in_force += f" x {multiplier:g} for its trust tier = {limit * multiplier:g} per minute"
    message = (
        f"rate limit exceeded for {who(policy)}: {in_force} (burst {capacity}), scope {scope}; "
        f"retry in {go_duration(retry)}"
    )
    return Refusal(429, rule_id, message, retry_after=max(retry, 0.001))


def concurrency(policy: EffectivePolicy, in_use: int, limit: int) -> Refusal:
    message = (
        f"concurrency limit reached for {who(policy)}: {in_use} of {limit} requests in "
        f"flight, scope {policy.source('concurrency.max')}; retry when one finishes"
    )
    return Refusal(429, CONCURRENCY_LIMIT, message, retry_after=1.0)

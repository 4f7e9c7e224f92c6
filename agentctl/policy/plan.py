"""What one request will draw on, worked out before any counter is touched (pure).

The worst-case estimate: 1 request; input estimate + output tokens x n choices; their
price. Output tokens per choice are the client's max_tokens, else the policy's
`default_max_output_tokens` (4096 built in) capped by `request.max_tokens`; zero
for embeddings. Then the
per-request cap checks, the rpm/tpm buckets (scaled by the trust multiplier) and
the budget windows: hour/day/month for the agent and its team, always (limited or
not, so the breaker, headers and reports have figures, and a limit added mid-window
starts from the truth), plus the unverified pool for unverified identities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentctl.counters.base import Amounts, Bucket, Limits, WindowSpec
from agentctl.errors import Refusal
from agentctl.facts import EMBEDDINGS, RESPONSES, RequestFacts
from agentctl.money import to_pico, usd_str
from agentctl.policy import refusals
from agentctl.policy.admission import WindowRef
from agentctl.policy.resolve import EffectivePolicy
from agentctl.policy.schema import Mode
from agentctl.policy.windows import PERIODS, WindowClock


def enforced(block: Any) -> bool:
    return block is None or getattr(block, "mode", Mode.enforce) == Mode.enforce


@dataclass(frozen=True, slots=True)
class Estimate:
    output_tokens: int  # per choice
    amounts: Amounts  # worst case: requests, tokens, pico-dollars


def estimate(pol: EffectivePolicy, facts: RequestFacts, price_in: int, price_out: int) -> Estimate:
    out = 0 if facts.endpoint == EMBEDDINGS else facts.max_output_tokens
    if out is None:
        cap = pol.rules.request.max_tokens if pol.rules.request else None
        out = min(pol.default_max_output_tokens, cap or pol.default_max_output_tokens)
    n = max(1, facts.n)
    # The worst case: budgets must hold even when the prompt tokenizes badly.
    tokens = facts.input_tokens_bound + out * n
    pico = facts.input_tokens_bound * price_in + out * n * price_out
    return Estimate(out, Amounts(1, tokens, pico))


def worst_case_hint(facts: RequestFacts, output_tokens: int) -> str:
    """How the reservation was sized, for a budget refusal a smaller request could avoid."""
    if facts.endpoint == EMBEDDINGS:
        return ""
    n = max(1, facts.n)
    per = f" x {n} choices" if n > 1 else ""
    field = "max_output_tokens" if facts.endpoint == RESPONSES else "max_tokens"
    if facts.max_output_tokens is None:
        source = f"{field} was not set, so the policy's default_max_output_tokens"
        fix = f"set {field} (or lower default_max_output_tokens) to reserve less"
    else:
        source = f"the request's {field}"
        fix = f"a smaller {field} reserves less"
    return (
        f"this request reserves its worst case: up to {facts.input_tokens_bound} input "
        f"tokens + {output_tokens} output tokens{per} ({source}); {fix}"
    )


def usd_limit(pol: EffectivePolicy) -> str | None:
    """The dotted path of an enforced USD limit on `pol` (a budget of the agent, its team
    or the unverified pool, the per-request cap, the cost breaker), or None."""
    for rule in pol.budgets:
        if rule.enforce and rule.limits.pico is not None:
            return f"{rule.path}.usd"  # budgets.day, team_budgets.month, pool_budgets.hour
    caps = pol.rules.request
    if caps is not None and caps.max_usd is not None and enforced(caps):
        return "request.max_usd"
    breaker = pol.rules.breaker
    if breaker is not None and enforced(breaker):
        if breaker.usd_per_hour is not None:
            return "breaker.usd_per_hour"
        if breaker.usd_per_day is not None:
            return "breaker.usd_per_day"
    return None


def cap_refusals(pol: EffectivePolicy, facts: RequestFacts, pico: int) -> list[Refusal]:
    caps = pol.rules.request
    if caps is None:
        return []
    found = []
    asked = facts.max_output_tokens
    if caps.max_tokens is not None and asked is not None and asked > caps.max_tokens:
        why = f"max output tokens {asked} is above the per-request cap {caps.max_tokens}"
        found.append((refusals.REQUEST_TOKEN_CAP, "request.max_tokens", why))
    est = facts.input_tokens_estimate
    if caps.max_input_tokens is not None and est > caps.max_input_tokens:
        why = f"input of about {est} tokens is above the per-request cap {caps.max_input_tokens}"
        found.append((refusals.REQUEST_TOKEN_CAP, "request.max_input_tokens", why))
    if caps.max_usd is not None and pico > to_pico(caps.max_usd):
        why = f"worst-case cost ${usd_str(pico)} is above the per-request cap ${caps.max_usd}"
        found.append((refusals.REQUEST_COST_CAP, "request.max_usd", why))
    return [refusals.not_allowed(rule_id, pol, path, why) for rule_id, path, why in found]


def rate_buckets(pol: EffectivePolicy, tokens: int, mult: float) -> list[tuple[str, int, Bucket]]:
    """(kind, configured per-minute limit, bucket) for rpm and tpm, scaled by `mult`."""
    rate = pol.rules.rate
    if rate is None:
        return []
    on = enforced(rate)
    out = []
    if rate.rpm is not None:
        cap = max(1, int((rate.burst or rate.rpm) * mult))
        out.append(("rpm", rate.rpm, Bucket(f"r|rpm|{pol.name}", rate.rpm * mult, cap, 1, on)))
    if rate.tpm is not None:
        cap = max(1, int((rate.burst_tokens or rate.tpm) * mult))
        bucket = Bucket(f"r|tpm|{pol.name}", rate.tpm * mult, cap, tokens, on)
        out.append(("tpm", rate.tpm, bucket))
    return out


def window_refs(
    pol: EffectivePolicy, now: float, clock: WindowClock, hold_ttl: float
) -> tuple[WindowRef, ...]:
    rules = {(r.subject, r.period): r for r in pol.budgets}
    subjects = [
        ("agent", pol.name, pol.timezone, "budgets."),
        ("team", pol.owner, pol.team_timezone, "team_budgets."),
    ]
    if pol.verification != "token":
        subjects.append(("pool", "*", pol.pool_timezone, "pool_budgets."))
    refs = []
    for subject, name, zone, prefix in subjects:
        for period in PERIODS:
            window = clock.window(period, now, zone)
            rule = rules.get((subject, period))
            key = f"w|{subject}|{name}|{period}|{zone}|{window.window_id}"
            limits = rule.limits if rule else Limits()
            spec = WindowSpec(key, limits, window.end + hold_ttl, rule.enforce if rule else True)
            refs.append(WindowRef(subject, window, spec, f"{prefix}{period}"))
    return tuple(refs)

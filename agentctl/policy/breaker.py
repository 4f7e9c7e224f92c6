"""The cost circuit breaker, evaluated on every settle.

A breaker compares the agent's *settled* spend (actual cost, not reservations) in
the current hour and day windows of its timezone with `breaker.usd_per_hour` and
`breaker.usd_per_day`. It trips on the one settle that takes spend from at or below
the threshold to above it, so concurrent settles report it exactly once; the caller
latches the agent disabled (when enforced), audits and alerts. In shadow mode the
trip is returned with `enforced=False`.
"""

from __future__ import annotations

from agentctl.counters.base import Amounts
from agentctl.money import to_pico, usd_str
from agentctl.policy import refusals
from agentctl.policy.admission import Admission, BreakerTrip
from agentctl.policy.plan import enforced

_THRESHOLDS = (
    ("hour", "usd_per_hour", refusals.BREAKER_HOURLY),
    ("day", "usd_per_day", refusals.BREAKER_DAILY),
)


def breaker_trips(
    admission: Admission, settled: dict[str, Amounts], cost: int
) -> list[BreakerTrip]:
    pol = admission.policy
    breaker = pol.rules.breaker
    if breaker is None:
        return []
    trips = []
    for period, field, rule_id in _THRESHOLDS:
        threshold = getattr(breaker, field)
        ref = next(
            (r for r in admission.windows if r.subject == "agent" and r.window.period == period),
            None,
        )
        if threshold is None or ref is None or ref.spec.key not in settled:
            continue
        limit = to_pico(threshold)
        spent = settled[ref.spec.key].pico
        if not spent > limit >= spent - cost:
            continue
        scope = pol.source(f"breaker.{field}")
        message = (
            f"cost breaker: agent '{pol.name}' spent ${usd_str(spent)} in {period} "
            f"{ref.window.window_id} ({ref.window.zone}), over ${usd_str(limit)} (scope "
            f"{scope}); latched disabled until `agentctl agents enable {pol.name}`"
        )
        webhook = pol.rules.alerts.webhook if pol.rules.alerts else None
        trips.append(
            BreakerTrip(
                agent=pol.name,
                owner=pol.owner,
                rule_id=rule_id,
                window_id=ref.window.window_id,
                spent_pico=spent,
                threshold_pico=limit,
                enforced=enforced(breaker),
                scope=scope,
                message=message,
                webhook=webhook,
            )
        )
    return trips

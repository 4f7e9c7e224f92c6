"""Admission: the limits the engine enforces on its own, with no static policy caps.

Two token buckets, refilled lazily (O(1)):

* the tier bucket: `multiplier(tier) x base` requests a second, base being
  `base_peak_multiple` (3) x the agent's own fast-rate peak (at least 1 req/s), or the
  conservative default during learning; capacity `burst_seconds` of the rate.
* containment, after a throttle-class event: `throttle_rps` (0.1/s) and
  `throttle_pico_per_minute` ($0.10/min, debited after each response), and the looping
  prompt refused outright while its episode lasts. At $0.01 a call a contained loop
  costs at most 6 cents a minute, and nothing if it only repeats the looping prompt.

`admit` returns the limit in force and None to allow, or the refusal
(status, rule_id, message, retry_after).
"""

from __future__ import annotations

from agentctl.trust.agent import AgentState
from agentctl.trust.gate import LOOP_RULE, RATE_RULE, THROTTLED_RULE

Refusal = tuple[int, str, str, float | None]


def admit(
    agent: AgentState, prompt: str, now: float, learning: bool
) -> tuple[float, Refusal | None]:
    cfg = agent.cfg
    c = agent.containment
    if c is not None and now - c.last_signal_at >= cfg.throttle_clear_s:
        agent.containment = c = None
    if c is not None:
        if prompt and agent.loop.is_hot(prompt, now, cfg):
            message = "this prompt is repeating in a loop"
            return cfg.throttle_rps, (429, LOOP_RULE, message, cfg.loop_window_s / 2)
        elapsed = now - c.refilled_at
        if elapsed > 0.0:
            cap = max(1.0, cfg.throttle_rps * cfg.burst_seconds)
            c.tokens = min(cap, c.tokens + elapsed * cfg.throttle_rps)
            refill = int(elapsed * cfg.throttle_pico_per_minute / 60)
            c.credit_pico = min(cfg.throttle_pico_per_minute, c.credit_pico + refill)
            c.refilled_at = now
        if c.tokens < 1.0 or c.credit_pico < 0:
            wait = (1.0 - c.tokens) / cfg.throttle_rps if c.tokens < 1.0 else 60.0
            refusal = (429, THROTTLED_RULE, f"throttled by trust ({c.detector})", wait)
            return cfg.throttle_rps, refusal
        c.tokens -= 1.0
        return cfg.throttle_rps, None
    limit = cfg.tier_multipliers[agent.tiers.tier] * agent.base_rps(
        now, learning, agent.requests.last_peak_fast
    )
    cap = max(3.0, limit * cfg.burst_seconds)
    if agent.bucket_tokens < 0.0:
        tokens = cap
    else:
        tokens = min(cap, agent.bucket_tokens + (now - agent.bucket_at) * limit)
    agent.bucket_at = now
    if tokens < 1.0:
        agent.bucket_tokens = tokens
        message = f"beyond the {agent.tiers.tier} tier's rate limit"
        return limit, (429, RATE_RULE, message, (1.0 - tokens) / limit)
    agent.bucket_tokens = tokens - 1.0
    return limit, None

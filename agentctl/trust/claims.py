"""Evidence from outside the request path: identity claims and crossed breakers.

* A valid token presented with another agent's declaration (403 `identity_mismatch`)
  is a strike against the *token's own* agent: its holder is misbehaving or
  misconfigured. Each strike alerts; `mismatch_strikes` (5) within
  `mismatch_window_s` (10 min) disable it. The claimed agent is never looked up.
* A request claiming a name without its credential (401, refused by the gateway) is
  told to the claimed agent's owner as an info alert, once an hour, and nothing else:
  no evidence, no activity, no detector sees it, so a flood of false claims cannot
  drain a victim's trust.
* A breaker (a hard cap from policy, crossed) is hard evidence: disable.
"""

from __future__ import annotations

from agentctl.trust import actions
from agentctl.trust.agent import AgentState
from agentctl.trust.events import TrustEvent
from agentctl.trust.signals import HARD, WEAK, Signal


def mismatch(
    agent: AgentState, claimed: str, now: float, *, request_id: str | None, source: str
) -> list[TrustEvent]:
    cfg = agent.cfg
    horizon = now - cfg.mismatch_window_s
    recent = [t for t in agent.strikes if t > horizon][-(cfg.mismatch_strikes - 1) :]
    agent.strikes = [*recent, now]
    n = len(agent.strikes)
    evidence = {
        "claimed": claimed,
        "strikes_in_window": n,
        "window_s": cfg.mismatch_window_s,
        "source": source,
    }
    level = HARD if n >= cfg.mismatch_strikes else WEAK
    sig = Signal("identity_mismatch", level, n, cfg.mismatch_strikes, agent.strikes[0], evidence)
    return actions.respond(agent, sig, now, request_id)


def failed_claim(agent: AgentState, now: float, source: str, reason: str) -> list[TrustEvent]:
    sig = Signal("failed_claim", WEAK, 1.0, 0.0, now, {"source": source, "reason": reason})
    return actions.alert(agent, sig, now, None, "info")


def breaker(
    agent: AgentState,
    name: str,
    value: float,
    threshold: float,
    now: float,
    request_id: str | None,
) -> list[TrustEvent]:
    sig = Signal("breaker", HARD, value, threshold, now, {"breaker": name})
    return actions.respond(agent, sig, now, request_id)

"""`StoreInfo`: trust tier and today's budget per agent for `agentctl tail`, from the store.

Tiers come from the latest trust snapshot the gateways save (every 15 s); the daily
budget from the policy in force, resolved for each agent's identity. Both are cached
for a few seconds so a tail refreshing every half second costs two small queries a
few times a minute, whatever the fleet size.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from agentctl.fleet import Extras
from agentctl.gateway.governance import load_active
from agentctl.identity import Identity
from agentctl.money import to_pico, usd_str
from agentctl.policy import PolicySet, effective
from agentctl.store import credentials as creds
from agentctl.store.sql import Store

REFRESH_S = 5.0


class StoreInfo:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._at = 0.0
        self._tiers: dict[str, str] = {}
        self._policy: PolicySet | None = None
        self._agents: dict[str, tuple[str, str, bool]] = {}

    def _reload(self) -> None:
        snapshot = creds.latest_snapshot(self.store) or {}
        self._tiers = {
            name: state.get("tiers", {}).get("tier", "probation")
            for name, state in snapshot.get("agents", {}).items()
        }
        self._policy = load_active(self.store)
        self._agents = {
            a.name: (a.owner, a.purpose, a.registered) for a in self.store.list_agents()
        }
        self._at = time.monotonic()

    def describe(self, agents: Sequence[str]) -> Mapping[str, Extras]:
        if time.monotonic() - self._at > REFRESH_S:
            self._reload()
        out: dict[str, Extras] = {}
        for name in agents:
            owner, purpose, registered = self._agents.get(name, ("", "", False))
            budget = None
            if self._policy is not None:
                verification = "token" if registered else "unverified"
                rules = effective(
                    self._policy, Identity(name, owner, purpose, verification=verification)
                ).rules
                day = rules.budgets.day if rules.budgets is not None else None
                if day is not None and day.usd is not None:
                    budget = usd_str(to_pico(day.usd))
            out[name] = Extras(tier=self._tiers.get(name), budget_today_usd=budget)
        return out

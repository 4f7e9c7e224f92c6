"""Effective policy for one identity, with the scope every value came from.

Chain, least to most specific: `defaults` <- `purposes.<purpose>` <- `owners.<owner>`
<- `agents.<name>`; for an unverified identity `unverified` is applied last, on top
of everything the declaration claims, so the operator has the final word on any key
it sets for unverified traffic (keys it leaves out fall through to the claimed
chain; set them all for a strict posture). Values merge leaf by leaf: an agent that
sets only `budgets.day.usd` keeps the day's `tokens` limit from its owner. Two
exceptions: `models.deny` accumulates over the chain (a deny in `defaults` cannot be
dropped by a more specific scope; an agent can only add to it), and `team_budgets` /
`pool_budgets` are not inherited: they apply to the team (owner's scope, windows in
the owner's timezone) and to all unverified traffic together.

Results are cached on the `PolicySet` per (name, owner, purpose, verification), so
the hot path does no work after an identity's first request; a new policy version
is a new `PolicySet` with an empty cache. Identities without an `agents.<name>` scope
share one resolution per (owner, purpose, verification), copied with their name, so
10,000 agents cost a few dozen resolutions at start-up and in `policy apply`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from agentctl.counters.base import Limits
from agentctl.identity import Identity
from agentctl.money import to_pico
from agentctl.policy.access import ModelAccess
from agentctl.policy.loader import PolicySet
from agentctl.policy.schema import (
    DEFAULT_LANE,
    DEFAULT_MAX_OUTPUT_TOKENS,
    DEFAULT_TIMEZONE,
    Budgets,
    Mode,
    Rules,
)
from agentctl.policy.windows import PERIODS, Period

BUILTIN = "builtin"
CACHE_LIMIT = 10_000
_NOT_INHERITED = {"team_budgets", "pool_budgets"}


@dataclass(frozen=True, slots=True)
class BudgetRule:
    subject: str  # "agent" | "team" | "pool"
    period: Period
    limits: Limits  # USD in pico-dollars
    enforce: bool
    path: str  # dotted path of the block, for provenance lookups ("budgets.day")


@dataclass(frozen=True)
class EffectivePolicy:
    name: str
    owner: str
    purpose: str
    verification: str
    version: str
    rules: Rules
    provenance: dict[str, str]  # dotted leaf path -> scope ("agents.prod-bot", "builtin")
    access: ModelAccess
    timezone: str
    team_timezone: str  # team_budgets windows: defaults <- owners.<owner>
    pool_timezone: str  # pool_budgets windows: defaults <- unverified
    lane: str
    default_max_output_tokens: int
    budgets: tuple[BudgetRule, ...] = ()
    team_budgets: Budgets | None = None
    pool_budgets: Budgets | None = None

    def source(self, path: str) -> str:
        return self.provenance.get(path, BUILTIN)

    def explain(self) -> list[tuple[str, Any, str]]:
        """(dotted path, value, scope) for every effective value, sorted by path."""
        rows = [
            (p, v, self.source(p))
            for p, v in _leaves(self.rules.model_dump(mode="json", exclude_none=True))
        ]
        for key, value in (
            ("timezone", self.timezone),
            ("lane", self.lane),
            ("default_max_output_tokens", self.default_max_output_tokens),
        ):
            if key not in self.provenance:
                rows.append((key, value, BUILTIN))
        for prefix, block in (
            ("team_budgets.", self.team_budgets),
            ("pool_budgets.", self.pool_budgets),
        ):
            if block is not None:
                rows += [
                    (p, v, self.source(p))
                    for p, v in _leaves(block.model_dump(mode="json", exclude_none=True), prefix)
                ]
        return sorted(rows, key=lambda row: row[0])


def _leaves(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out += _leaves(value, path + ".")
        else:
            out.append((path, value))
    return out


def _merge(
    into: dict[str, Any], layer: dict[str, Any], scope: str, prov: dict[str, str], prefix: str = ""
) -> None:
    for key, value in layer.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            _merge(into.setdefault(key, {}), value, scope, prov, path + ".")
        elif path == "models.deny":
            into[key] = list(dict.fromkeys([*into.get(key, []), *value]))
            prov[path] = f"{prov[path]}+{scope}" if path in prov else scope
        else:
            into[key] = value
            prov[path] = scope


def _chain(policy: PolicySet, identity: Identity) -> list[tuple[str, Rules]]:
    doc = policy.document
    chain: list[tuple[str, Rules | None]] = [
        ("defaults", doc.defaults),
        (f"purposes.{identity.purpose}", doc.purposes.get(identity.purpose)),
        (f"owners.{identity.owner}", doc.owners.get(identity.owner)),
        (f"agents.{identity.name}", doc.agents.get(identity.name)),
    ]
    if identity.verification != "token":
        chain.append(("unverified", doc.unverified))
    return [(scope, rules) for scope, rules in chain if rules is not None]


def _budget_rules(subject: str, budgets: Budgets | None, prefix: str) -> list[BudgetRule]:
    out = []
    for period in PERIODS:
        block = getattr(budgets, period, None) if budgets else None
        if block is None:
            continue
        usd: Decimal | None = block.usd
        limits = Limits(block.requests, block.tokens, None if usd is None else to_pico(usd))
        if limits != Limits():
            out.append(
                BudgetRule(subject, period, limits, block.mode == Mode.enforce, f"{prefix}{period}")
            )
    return out


def _resolve(policy: PolicySet, identity: Identity) -> EffectivePolicy:
    merged: dict[str, Any] = {}
    prov: dict[str, str] = {}
    for scope, rules in _chain(policy, identity):
        layer = rules.model_dump(exclude_unset=True, exclude=_NOT_INHERITED)
        _merge(merged, layer, scope, prov)
    rules = Rules.model_validate(merged)
    doc = policy.document
    owner = doc.owners.get(identity.owner)
    base_tz = (doc.defaults.timezone if doc.defaults else None) or DEFAULT_TIMEZONE
    team_tz = (owner.timezone if owner else None) or base_tz
    pool_tz = (doc.unverified.timezone if doc.unverified else None) or base_tz
    timezone = rules.timezone or DEFAULT_TIMEZONE
    budgets = _budget_rules("agent", rules.budgets, "budgets.")
    if owner is not None and owner.team_budgets is not None:
        team_scope = f"owners.{identity.owner}"
        budgets += _budget_rules("team", owner.team_budgets, "team_budgets.")
        prov |= {
            p: team_scope
            for p, _ in _leaves(owner.team_budgets.model_dump(exclude_none=True), "team_budgets.")
        }
    pool = doc.unverified.pool_budgets if doc.unverified else None
    if identity.verification == "token":
        pool = None
    if pool is not None:
        budgets += _budget_rules("pool", pool, "pool_budgets.")
        prov |= {
            p: "unverified" for p, _ in _leaves(pool.model_dump(exclude_none=True), "pool_budgets.")
        }
    models = rules.models
    access = ModelAccess.compile(
        models.allow if models else None, (models.deny or []) if models else [], doc.aliases
    )
    return EffectivePolicy(
        name=identity.name,
        owner=identity.owner,
        purpose=identity.purpose,
        verification=identity.verification,
        version=policy.version,
        rules=rules,
        provenance=prov,
        access=access,
        timezone=timezone,
        team_timezone=team_tz,
        pool_timezone=pool_tz,
        lane=rules.lane or DEFAULT_LANE,
        default_max_output_tokens=rules.default_max_output_tokens or DEFAULT_MAX_OUTPUT_TOKENS,
        budgets=tuple(budgets),
        team_budgets=owner.team_budgets if owner else None,
        pool_budgets=pool,
    )


def policy_zones(policy: PolicySet) -> set[str]:
    """Every timezone a window of `policy` can be in (the default included)."""
    found = {DEFAULT_TIMEZONE}
    todo: list[Any] = [policy.document.model_dump(exclude_none=True)]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            zone = node.get("timezone")
            if isinstance(zone, str):
                found.add(zone)
            todo.extend(node.values())
    return found


def effective(policy: PolicySet, identity: Identity) -> EffectivePolicy:
    key = (identity.name, identity.owner, identity.purpose, identity.verification)
    cache = policy.cache
    found = cache.get(key)
    if found is None:
        if len(cache) >= CACHE_LIMIT:
            cache.clear()  # bounded against floods of made-up names
        found = cache[key] = _shared(policy, identity)
    return found  # type: ignore[no-any-return, unused-ignore]


def _shared(policy: PolicySet, identity: Identity) -> EffectivePolicy:
    """An agent without an `agents.<name>` scope resolves like every other agent of its
    owner, purpose and verification: resolve that class once (10,000 agents are a few
    dozen classes) and stamp the name on a copy."""
    if identity.name in policy.document.agents:
        return _resolve(policy, identity)
    shape = ("\0class", identity.owner, identity.purpose, identity.verification)
    template = policy.cache.get(shape)
    if template is None:
        template = policy.cache[shape] = _resolve(policy, identity)
    return replace(template, name=identity.name)

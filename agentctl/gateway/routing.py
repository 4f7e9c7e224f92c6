"""Which upstreams may serve a request (its pool), and in which lane it waits.

Pools: an explicit pool (`pools:` in agentctl.yaml) claims client model names by glob
or alias and lists its upstreams in preference order; the first explicit pool whose
`models` match wins. A model no explicit pool claims gets an implicit pool: every
upstream whose `models` globs or `aliases` keys match, in config order. For
`/v1/messages` an implicit pool keeps only Anthropic-API upstreams when there are any,
for other endpoints only OpenAI-API ones; otherwise any match (many OpenAI-compatible
servers also speak Messages). Names match case-insensitively, raw or normalised.

Upstream `base_url` replaces the `/v1` prefix of the client's path, so
`https://api.openai.com/v1` + `/v1/chat/completions` -> `.../v1/chat/completions`,
and an Anthropic upstream is configured as `https://api.anthropic.com/v1`.
An upstream's `aliases` rename the model for that upstream only (the client asks for
`fast`, the upstream is sent `gpt-4o-mini`). Request fields can never change the
upstream URL: only config does.

Lanes (`effective_lane`): policy sets `priority`, `standard` (default) or `batch`;
trust moves it when `routing.trust_lanes` is on. A contained agent (trust lane `low`:
throttled after a detector fired) drops to `batch` whatever its policy says; a
trusted agent's `standard` rises to `priority`. Trust never lifts `batch`: that is a
statement about the work, not about the agent's behaviour.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from agentctl.config import LANE_NAMES, PoolOptions, Routing, Upstream
from agentctl.config import Pool as PoolConfig
from agentctl.facts import MESSAGES
from agentctl.pricing import normalise_model

LANES = LANE_NAMES  # priority order: index 0 is served first


@dataclass(frozen=True, slots=True)
class Route:
    upstream: Upstream
    url: str
    model: str  # the model name sent upstream


@dataclass(frozen=True, slots=True)
class Pool:
    """The upstreams that may serve one client model, in preference order."""

    name: str
    members: tuple[Upstream, ...]
    options: PoolOptions
    explicit: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """One request's pool, with what it needs to build a `Route` to any member."""

    pool: Pool
    model: str  # as the client named it
    path: str

    def route(self, upstream: Upstream) -> Route:
        return Route(
            upstream, upstream.base_url + self.path[3:], upstream_model(upstream, self.model)
        )

    @property
    def primary(self) -> Route:
        return self.route(self.pool.members[0])


def upstream_model(upstream: Upstream, model: str) -> str:
    if not upstream.aliases:
        return model
    lowered = model.lower()
    for alias, target in upstream.aliases.items():
        if alias.lower() == lowered:
            return target
    return model


def effective_lane(policy_lane: str, trust_lane: str | None, *, trust_lanes: bool = True) -> str:
    lane = policy_lane if policy_lane in LANES else "standard"
    if not trust_lanes or trust_lane is None:
        return lane
    if trust_lane == "low":
        return "batch"
    if trust_lane == "priority" and lane == "standard":
        return "priority"
    return lane


class Router:
    def __init__(
        self,
        upstreams: tuple[Upstream, ...],
        pools: tuple[PoolConfig, ...] = (),
        routing: Routing | None = None,
    ) -> None:
        self.upstreams = upstreams
        self.defaults: PoolOptions = routing or Routing()
        by_name = {u.name: u for u in upstreams}
        self.explicit = tuple(
            (
                cfg,
                Pool(
                    cfg.name,
                    tuple(by_name[n] for n in cfg.upstreams),
                    PoolOptions(**cfg.model_dump(include=set(PoolOptions.model_fields))),
                    explicit=True,
                ),
            )
            for cfg in pools
        )
        self._implicit: dict[tuple[str, ...], Pool] = {}
        self._cache: dict[tuple[str, str], Pool | None] = {}

    def resolve(self, model: str, endpoint: str, path: str) -> Route | None:
        """The preferred route alone (what routing was before pools)."""
        plan = self.plan(model, endpoint, path)
        return plan.primary if plan is not None else None

    def plan(self, model: str, endpoint: str, path: str) -> Plan | None:
        key = (model, endpoint)
        try:
            pool = self._cache[key]
        except KeyError:
            pool = self._cache[key] = self._match(model, endpoint)
            if len(self._cache) > 50_000:
                self._cache.clear()
        if pool is None:
            return None
        return Plan(pool, model, path)

    def pools(self) -> list[Pool]:
        """Explicit pools, then the implicit ones requests have used so far."""
        return [pool for _, pool in self.explicit] + list(self._implicit.values())

    def _match(self, model: str, endpoint: str) -> Pool | None:
        names = {model.lower(), normalise_model(model)}
        for cfg, pool in self.explicit:
            if _matches(names, cfg.models) or any(
                n in {a.lower() for u in pool.members for a in u.aliases} for n in names
            ):
                return pool
        wanted = "anthropic" if endpoint == MESSAGES else "openai"
        matching = [u for u in self.upstreams if _serves(u, names)]
        preferred = [u for u in matching if u.api == wanted]
        members = tuple(preferred or matching)
        if not members:
            return None
        key = tuple(u.name for u in members)
        if key not in self._implicit:
            self._implicit[key] = Pool("+".join(key), members, self.defaults)
        return self._implicit[key]

    def models(self) -> list[str]:
        """Concrete (non-glob) model names and aliases from config, for GET /v1/models."""
        seen: dict[str, None] = {}
        patterns = [p for u in self.upstreams for p in (*u.models, *u.aliases)]
        patterns += [p for cfg, _ in self.explicit for p in cfg.models]
        for pattern in patterns:
            if not any(ch in pattern for ch in "*?["):
                seen[pattern] = None
        return list(seen)


def _matches(names: set[str], globs: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(n, g.lower()) for n in names for g in globs)


def _serves(upstream: Upstream, names: set[str]) -> bool:
    if _matches(names, upstream.models):
        return True
    return any(alias.lower() in names for alias in upstream.aliases)

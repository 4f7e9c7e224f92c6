"""Prometheus metrics of one gateway: `observe(call)` at the end of every request's
settlement, exposition at `GET /metrics`.

- **A registry per `Metrics`** (so per app), never prometheus_client's global default:
  tests and several apps in one process cannot collide.
- **`observe()` is cheap.** It runs on the event loop for every request, so it only bumps
  integers in dicts; metric families are built at scrape time by a custom collector, also
  on the event loop, so nothing needs a lock. Money accumulates in integer pico-dollars
  and becomes a float only in the exposition.
- **Cardinality guard (`TopN`).** Agent, owner and model names are declared by clients.
  At most N values of each get their own label, chosen by spend; the rest are counted as
  `_other`. Counters stay monotonic: when a name is promoted its earlier traffic stays in
  `_other`, and a demoted name's series freezes (dropped once N newer names have been
  demoted), so `rate()` never sees a reset. Neither `_other` nor `_none` (no identity, no
  model) is a valid identity value, so no agent can hide among them.
- **Budget and tier gauges come from providers** the policy and trust subsystems set
  (`budgets`, `tiers`); nothing is exported until one is set.
- Other per-call observers (the tracer) are chained behind `observe()`, so the pipeline
  has one telemetry call. A failing observer is logged, never raised into a request.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from agentctl import __version__
from agentctl.config import MetricsSettings
from agentctl.money import PICO

if TYPE_CHECKING:
    from agentctl.gateway.call import Call

log = logging.getLogger("agentctl.metrics")

OTHER = "_other"
NONE = "_none"
ID_LABELS = ("agent", "owner", "purpose")
TOKEN_TYPES = ("input", "output", "cached", "cache_write", "reasoning")
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320)
TTFB_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40)
STATUS_CLASS = {n: f"{n}xx" for n in range(1, 6)}
PROMOTE = (5, 4)  # a challenger needs > 5/4 of the smallest labelled spend

CallObserver = Callable[["Call"], None]


@dataclass(frozen=True, slots=True)
class BudgetReading:
    agent: str
    window: str  # the policy's name for the window, e.g. "daily"
    limit_pico: int
    remaining_pico: int


@dataclass(frozen=True, slots=True)
class TierReading:
    agent: str
    tier: str


class BudgetSource(Protocol):
    def budget_readings(self) -> Iterable[BudgetReading]: ...


class UpstreamSource(Protocol):
    def slot_readings(self) -> Iterable[tuple[str, str, int]]: ...  # (upstream, lane, n)
    def queue_readings(self) -> Iterable[tuple[str, str, int]]: ...  # (pool, lane, n)
    def health_readings(self) -> Iterable[tuple[str, bool]]: ...  # (upstream, healthy)


class TierSource(Protocol):
    def tier_readings(self) -> Iterable[TierReading]: ...


class TopN:
    """Which names get their own label: at most `limit`, the biggest spenders.

    Names without a label are tracked in a bounded table (`track` entries; when full the
    lower half is dropped and newcomers start at the largest dropped spend, counted as
    possible error), so a flood of names costs bounded memory and a big spender arriving
    late still gets a label once its guaranteed spend beats the smallest labelled one.
    """

    def __init__(self, limit: int, track: int | None = None) -> None:
        self.limit = limit
        self.track = track or max(4 * limit, 64)
        self.labelled: dict[str, int] = {}
        self.candidates: dict[str, list[int]] = {}  # name -> [spend, possible error]
        self.floor = 0
        self.threshold = 0  # lower bound of min(labelled spend): labelled spends only grow
        self.retired: dict[str, None] = {}  # demoted, series frozen; oldest first
        self.forgotten: list[str] = []  # retired past the cap: their series get dropped
        self.folded = 0

    def label(self, name: str, spend: int) -> str:
        known = self.labelled.get(name)
        if known is not None:
            self.labelled[name] = known + spend
            return name
        if len(self.labelled) < self.limit:
            entry = self.candidates.pop(name, None)
            self._admit(name, (entry[0] - entry[1] if entry else 0) + spend)
            return name
        entry = self.candidates.get(name)
        if entry is None:
            if len(self.candidates) >= self.track:
                self._shrink()
            entry = self.candidates[name] = [self.floor, self.floor]
        entry[0] += spend
        sure = entry[0] - entry[1]
        if sure * PROMOTE[1] > self.threshold * PROMOTE[0]:
            low_name, low = min(self.labelled.items(), key=itemgetter(1))
            self.threshold = low
            if sure * PROMOTE[1] > low * PROMOTE[0]:
                del self.labelled[low_name], self.candidates[name]
                self.candidates[low_name] = [low, 0]
                self._retire(low_name)
                self._admit(name, sure)
                return name
        self.folded += 1
        return OTHER

    def _admit(self, name: str, spend: int) -> None:
        self.labelled[name] = spend
        self.retired.pop(name, None)

    def _retire(self, name: str) -> None:
        self.retired[name] = None
        if len(self.retired) > self.limit:
            oldest = next(iter(self.retired))
            del self.retired[oldest]
            self.forgotten.append(oldest)

    def _shrink(self) -> None:
        ranked = sorted(self.candidates.items(), key=lambda kv: kv[1][0])
        dropped = ranked[: len(ranked) // 2 or 1]
        self.floor = max(self.floor, dropped[-1][1][0])
        for name, _ in dropped:
            del self.candidates[name]


class Histograms:
    """Bucket counts per label key; the last two cells are the count and the sum."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        self.series: dict[tuple[str, ...], list[float]] = {}

    def observe(self, key: tuple[str, ...], value: float) -> None:
        row = self.series.get(key)
        if row is None:
            row = self.series[key] = [0] * (len(self.bounds) + 1) + [0.0]
        row[bisect_left(self.bounds, value)] += 1
        row[-1] += value

    def family(self, name: str, doc: str, labels: Sequence[str]) -> HistogramMetricFamily:
        fam = HistogramMetricFamily(name, doc, labels=labels, unit="seconds")
        edges = [*(repr(b) for b in self.bounds), "+Inf"]
        for key, row in self.series.items():
            total, buckets = 0.0, []
            for edge, count in zip(edges, row[:-1], strict=True):
                total += count
                buckets.append((edge, total))
            fam.add_metric(key, buckets, row[-1])
        return fam


class Metrics:
    def __init__(
        self,
        settings: MetricsSettings | None = None,
        *,
        inflight: Callable[[], int] = lambda: 0,
        queue_depth: Callable[[], int] = lambda: 0,
        observers: Sequence[CallObserver] = (),
    ) -> None:
        cfg = settings or MetricsSettings()
        self.agents, self.owners = TopN(cfg.max_agents), TopN(cfg.max_agents)
        self.models = TopN(cfg.max_models)
        self.requests: dict[tuple[str, ...], int] = {}  # (agent, owner, purpose, model, status)
        self.usage: dict[tuple[str, ...], list[int]] = {}  # (a, o, p, model): tokens..., pico
        self.refusals: dict[tuple[str, ...], int] = {}  # (agent, owner, purpose, rule)
        self.latency = Histograms(LATENCY_BUCKETS)  # (agent, model)
        self.ttfb = Histograms(TTFB_BUCKETS)
        self.inflight, self.queue_depth = inflight, queue_depth
        self.observers = list(observers)
        self.budgets: BudgetSource | None = None
        self.tiers: TierSource | None = None
        self.upstreams: UpstreamSource | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Exporter(self))

    def observe(self, call: Call) -> None:
        try:
            self._count(call)
        except Exception:  # telemetry must never fail a request
            log.exception("metrics: could not count request %s", call.request_id)
        for observer in self.observers:
            try:
                observer(call)
            except Exception:
                log.exception("telemetry observer failed for request %s", call.request_id)

    def _count(self, call: Call) -> None:
        cost = call.cost_pico or 0
        ident = call.identity
        if ident is None:
            agent = owner = purpose = NONE
        else:
            agent = self.agents.label(ident.name, cost)
            owner = self.owners.label(ident.owner, cost)
            purpose = ident.purpose
        facts = call.facts
        model = self.models.label(facts.model, cost) if facts and facts.model else NONE
        status = STATUS_CLASS.get(call.status // 100, "none")
        key = (agent, owner, purpose, model, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        if call.outcome == "refused":
            rkey = (agent, owner, purpose, call.rule_id or NONE)
            self.refusals[rkey] = self.refusals.get(rkey, 0) + 1
        usage = call.usage
        if usage is not None:
            ukey = key[:4]
            acc = self.usage.get(ukey)
            if acc is None:
                acc = self.usage[ukey] = [0, 0, 0, 0, 0, 0]
            acc[0] += usage.prompt_tokens
            acc[1] += usage.completion_tokens
            acc[2] += usage.cached_tokens
            acc[3] += usage.cache_write_tokens
            acc[4] += usage.reasoning_tokens
            acc[5] += cost
        if call.forwarded:
            if call.finished is not None:
                self.latency.observe((agent, model), call.finished - call.started)
            if call.ttfb is not None:
                self.ttfb.observe((agent, model), call.ttfb)
        if self.agents.forgotten or self.owners.forgotten or self.models.forgotten:
            self._forget()

    def _forget(self) -> None:
        """Drop the frozen series of names retired long ago (see `TopN`)."""
        for guard, positions in ((self.agents, (0, 0)), (self.owners, (1, None))):
            self._drop(set(guard.forgotten), *positions)
            guard.forgotten.clear()
        self._drop(set(self.models.forgotten), 3, 1)
        self.models.forgotten.clear()

    def _drop(self, names: set[str], pos: int, hist_pos: int | None) -> None:
        for table in (self.requests, self.usage, self.refusals):
            if table is self.refusals and pos == 3:
                continue  # refusals are keyed by rule, not model
            for key in [k for k in table if k[pos] in names]:
                del table[key]
        if hist_pos is not None:
            for hist in (self.latency, self.ttfb):
                for key in [k for k in hist.series if k[hist_pos] in names]:
                    del hist.series[key]

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


def _usd(pico: int) -> float:
    return pico / PICO  # float only here, at export


class _Exporter:
    """Builds the families from `Metrics`' plain counters at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        m = self.m
        info = InfoMetricFamily("agentctl_build", "agentctl version")
        info.add_metric([], {"version": __version__})
        yield info
        yield _counter(
            "agentctl_requests",
            "Requests settled by the gateway, by status class.",
            [*ID_LABELS, "model", "status"],
            m.requests.items(),
        )
        tokens = CounterMetricFamily(
            "agentctl_tokens",
            "Tokens metered (input includes cached and cache_write; output includes reasoning).",
            labels=[*ID_LABELS, "model", "type"],
        )
        cost = CounterMetricFamily(
            "agentctl_cost_usd",
            "Exact cost in USD (summed in pico-dollars).",
            labels=[*ID_LABELS, "model"],
        )
        for key, acc in m.usage.items():
            for kind, value in zip(TOKEN_TYPES, acc, strict=False):
                tokens.add_metric([*key, kind], value)
            cost.add_metric(key, _usd(acc[5]))
        yield tokens
        yield cost
        yield _counter(
            "agentctl_refusals",
            "Requests refused by the gateway, by rule id.",
            [*ID_LABELS, "rule"],
            m.refusals.items(),
        )
        yield m.latency.family(
            "agentctl_request_duration", "Time from request to last byte.", ("agent", "model")
        )
        yield m.ttfb.family(
            "agentctl_time_to_first_byte", "Time from request to first byte.", ("agent", "model")
        )
        yield GaugeMetricFamily(
            "agentctl_inflight_requests", "Requests in the pipeline now.", value=m.inflight()
        )
        yield GaugeMetricFamily(
            "agentctl_audit_queue_depth", "Audit records not yet stored.", value=m.queue_depth()
        )
        if m.upstreams is not None:
            yield from _upstream_families(m.upstreams)
        folded = CounterMetricFamily(
            "agentctl_metrics_folded",
            "Observations counted under _other by the cardinality guard.",
            labels=["dimension"],
        )
        for dim, guard in (("agent", m.agents), ("owner", m.owners), ("model", m.models)):
            folded.add_metric([dim], guard.folded)
        yield folded
        yield from _provided(m)


def _counter(
    name: str, doc: str, labels: list[str], items: Iterable[tuple[tuple[str, ...], int]]
) -> CounterMetricFamily:
    fam = CounterMetricFamily(name, doc, labels=labels)
    for key, value in items:
        fam.add_metric(key, value)
    return fam


def _provided(m: Metrics) -> Iterator[Metric]:
    """Budget and tier gauges; agents without a label are shown up to the same limit."""
    if m.budgets is not None:
        remaining = GaugeMetricFamily(
            "agentctl_budget_remaining_usd",
            "Budget left in the window.",
            labels=["agent", "window"],
        )
        limit = GaugeMetricFamily(
            "agentctl_budget_limit_usd", "Budget of the window.", labels=["agent", "window"]
        )
        for r in _bounded(m, _read(m.budgets.budget_readings)):
            remaining.add_metric([r.agent, r.window], _usd(r.remaining_pico))
            limit.add_metric([r.agent, r.window], _usd(r.limit_pico))
        yield remaining
        yield limit
    if m.tiers is not None:
        tier = GaugeMetricFamily(
            "agentctl_trust_tier", "1 for the agent's current trust tier.", labels=["agent", "tier"]
        )
        for t in _bounded(m, _read(m.tiers.tier_readings)):
            tier.add_metric([t.agent, t.tier], 1)
        yield tier


def _read(reader: Callable[[], Iterable[Any]]) -> list[Any]:
    try:
        return list(reader())
    except Exception:  # a broken provider must not break the scrape
        log.exception("metrics: a gauge provider failed")
        return []


def _bounded(m: Metrics, readings: list[Any]) -> Iterator[Any]:
    labelled, extra = m.agents.labelled, set[str]()
    for reading in readings:
        if reading.agent not in labelled:
            if reading.agent not in extra and len(extra) >= m.agents.limit:
                continue
            extra.add(reading.agent)
        yield reading


def _upstream_families(source: UpstreamSource) -> Iterator[Metric]:
    slots = GaugeMetricFamily(
        "agentctl_upstream_in_flight",
        "Requests holding an upstream slot, by lane.",
        labels=["upstream", "lane"],
    )
    for upstream, lane, n in source.slot_readings():
        slots.add_metric([upstream, lane], n)
    yield slots
    queued = GaugeMetricFamily(
        "agentctl_upstream_queue_depth",
        "Requests waiting for an upstream slot, by pool and lane.",
        labels=["pool", "lane"],
    )
    for pool, lane, n in source.queue_readings():
        queued.add_metric([pool, lane], n)
    yield queued
    healthy = GaugeMetricFamily(
        "agentctl_upstream_healthy",
        "1 while the upstream takes traffic, 0 while it is ejected.",
        labels=["upstream"],
    )
    for upstream, ok in source.health_readings():
        healthy.add_metric([upstream], 1 if ok else 0)
    yield healthy

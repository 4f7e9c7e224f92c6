"""Trust simulation: a seeded population and injected incidents through the real engine.

Deterministic (seeded RNGs, fake clock, no network): every request goes through
`TrustEngine.before_request` and, when admitted, `after_request`, exactly as the
gateway will call them. Clean agents (nightly batch, diurnal interactive, bursty,
sparse) live through a history period and then an evaluation period with legitimate
surprises (month-end doubling, a permanent +50% step, a source migration, two provider
outages with client retries); incident agents get one injected incident each. Money is
summed in integer pico-dollars and reported as exact `Decimal`.

    python bench/trust_sim.py --small            # the CI-sized run (well under 60 s)
    python bench/trust_sim.py --agents 60 --weeks 2 --incidents 5 --write

`run(SimConfig)` returns a `SimResult` whose `targets()` the test suite asserts.
"""

from __future__ import annotations

import argparse
import heapq
import math
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentctl.facts import CHAT, RequestFacts
from agentctl.identity import Identity
from agentctl.money import from_pico, to_pico
from agentctl.trust import Observation, TrustEngine, prompt_hash
from agentctl.trust.events import ALERT, DISABLE, THROTTLE, TrustEvent

DAY = 86400.0
HOUR = 3600.0
BLOCK = 300.0  # arrival rates are piecewise constant over five-minute blocks
EVAL_START = datetime(2026, 1, 26, tzinfo=UTC).timestamp()  # a Monday; month-end in week 1
PRICES = {  # pico-dollars per (input, output) token
    "gpt-4o": (2_500_000, 10_000_000),
    "gpt-4o-mini": (150_000, 600_000),
    "o1": (15_000_000, 60_000_000),
}
CALL = to_pico("0.01")  # a loop call: 2000 in + 500 out on gpt-4o, exactly one cent
SHARES = (("nightly", 0.30), ("interactive", 0.40), ("bursty", 0.15), ("sparse", 0.15))
INCIDENT_KINDS = (
    "loop-38x",
    "loop-38x-diverse",
    "loop-6x",
    "loop-2x-dup",
    "model-jump",
    "cost-creep",
    "stolen-token",
    "spoof-flood",
    "mismatch-flood",
)


@dataclass
class SimConfig:
    seed: int = 7
    agents: int = 40  # clean agents
    weeks: int = 2  # evaluation weeks
    history_days: int = 21
    incidents: int = 3  # per incident type
    creep_per_day: float = 0.03
    sample_every: int = 64  # overhead sampling

    @classmethod
    def small(cls, seed: int = 7) -> SimConfig:
        return cls(seed=seed, agents=10, weeks=1, history_days=16, incidents=1, creep_per_day=0.05)


@dataclass
class Incident:
    kind: str
    agent: str
    start: float
    end: float
    victim: str = ""
    first_alert: float | None = None
    throttle: float | None = None
    disable: float | None = None
    pico_to_throttle: int = 0
    pico_contained: int = 0  # admitted incident spend after throttle, until disable or end
    pico_total: int = 0
    pico_uncontained: int = 0
    attempts: int = 0
    refused: int = 0
    first_refused: bool | None = None
    victim_bad_before: float = 0.0
    victim_bad_after: float = 0.0
    victim_tier_before: str = ""
    victim_tier_after: str = ""
    spend: list[tuple[float, int]] = field(default_factory=list, repr=False)

    def delay(self, at: float | None) -> float | None:
        return None if at is None else at - self.start

    @property
    def contained_minutes(self) -> float:
        if self.throttle is None:
            return 0.0
        return ((self.disable or self.end) - self.throttle) / 60.0

    @property
    def victim_unharmed(self) -> bool:
        return (
            self.victim_bad_after <= self.victim_bad_before
            and self.victim_tier_after == self.victim_tier_before
        )


@dataclass
class CleanStats:
    agents: int = 0
    agent_weeks: float = 0.0
    throttles: int = 0
    disables: int = 0
    tier_changes: int = 0
    alerts: int = 0
    requests: int = 0
    denied: int = 0
    tiers_at_end: dict[str, int] = field(default_factory=dict)
    throttled_by: dict[str, int] = field(default_factory=dict)
    onboarding_hours: dict[str, list[float]] = field(default_factory=dict)

    def per_week(self, n: int) -> float:
        return n / self.agent_weeks if self.agent_weeks else 0.0


@dataclass
class SimResult:
    config: SimConfig
    incidents: list[Incident]
    clean: CleanStats
    overhead_us: dict[str, float]
    requests: int
    wall_s: float

    def by_kind(self, kind: str) -> list[Incident]:
        return [i for i in self.incidents if i.kind == kind]

    def targets(self) -> dict[str, tuple[float, float, bool]]:
        """name -> (worst observed value, limit, met)."""
        out: dict[str, tuple[float, float, bool]] = {}

        def worst(kind: str, attr: str) -> float:
            values = [i.delay(getattr(i, attr)) for i in self.by_kind(kind)]
            return max((math.inf if v is None else v) for v in values) if values else math.inf

        def check(name: str, value: float, limit: float) -> None:
            out[name] = (value, limit, value <= limit)

        check("loop-38x contained (s)", worst("loop-38x", "throttle"), 10.0)
        spent = max(
            (float(from_pico(i.pico_to_throttle)) for i in self.by_kind("loop-38x")),
            default=math.inf,
        )
        check("loop-38x $ before containment", spent, 2.0)
        per_min = max(
            (
                float(from_pico(i.pico_contained)) / max(i.contained_minutes, 1e-9)
                for i in self.by_kind("loop-38x")
            ),
            default=math.inf,
        )
        check("loop-38x $/min while contained", per_min, 0.10)
        check("loop-38x disabled while it continues (s)", worst("loop-38x", "disable"), 300.0)
        check("loop-6x contained (s)", worst("loop-6x", "throttle"), 300.0)
        check("loop-2x-dup contained (s)", worst("loop-2x-dup", "throttle"), 120.0)
        spoof = self.by_kind("spoof-flood")
        check(
            "spoof refused on first request (fails)",
            float(sum(1 for i in spoof if not i.first_refused)),
            0.0,
        )
        floods = spoof + self.by_kind("mismatch-flood")
        check(
            "flood victims that lost trust", float(sum(not i.victim_unharmed for i in floods)), 0.0
        )
        c = self.clean
        check("clean wrongful throttles / agent-week", c.per_week(c.throttles), 0.05)
        check("clean wrongful disables / agent-week", c.per_week(c.disables), 0.0)
        check("clean tier changes / agent-week", c.per_week(c.tier_changes), 0.3)
        return out

    def table(self, command: str) -> str:
        return render(self, command)


# --- traffic ------------------------------------------------------------------------------------


def month_end(day: int) -> bool:
    date = datetime.fromtimestamp(day * DAY, UTC)
    nxt = datetime.fromtimestamp((day + 2) * DAY, UTC)
    return nxt.month != date.month


class Traffic:
    """One agent's normal request process: piecewise-constant rates, seeded per agent."""

    def __init__(self, kind: str, rng: random.Random, base: float) -> None:
        self.kind, self.rng, self.base = kind, rng, base
        self.start_hour = rng.uniform(19.0, 23.0)
        self.tz = rng.choice((-8, -5, -3, 0, 1, 2, 5.5, 8, 9))
        self.burst_minute = rng.randrange(0, 55, 5)
        self.night_seed = rng.random()
        self.days: dict[int, tuple[float, float]] = {}
        self.hour_gamma = (-1, 1.0)
        self.step_at = math.inf

    def night(self, day: int) -> tuple[float, float]:
        got = self.days.get(day)
        if got is None:
            r = random.Random(f"{self.night_seed}:{day}")
            got = (
                r.uniform(-0.5, 0.5) * HOUR,
                r.uniform(0.8, 1.2) * (2.0 if month_end(day) else 1.0),
            )
            self.days[day] = got
        return got

    def rate(self, t: float) -> float:
        step = 1.5 if t >= self.step_at else 1.0
        if self.kind == "nightly":
            day = int(t // DAY)
            for d in (day, day - 1):
                jitter, factor = self.night(d)
                begin = d * DAY + self.start_hour * HOUR + jitter
                if begin <= t < begin + 7 * HOUR:
                    return self.base * factor * step
            return 0.0
        if self.kind == "interactive":
            local = t + self.tz * HOUR
            hour = int(local // HOUR)
            if not 8 <= hour % 24 < 18:
                return 0.0
            if self.hour_gamma[0] != hour:
                self.hour_gamma = (hour, self.rng.gammavariate(4.0, 0.25))
            weekend = int(local // DAY) % 7 in (5, 6)  # day 0 of the epoch was a Thursday
            return self.base * self.hour_gamma[1] * (0.1 if weekend else 1.0) * step
        if self.kind == "bursty":
            minute = (t % HOUR) / 60.0
            burst = self.burst_minute <= minute < self.burst_minute + 5
            return self.base * (10.0 if burst else 1.0) * step
        return (0.1 if self.rng.random() < 0.05 else 0.0) * step  # sparse: active blocks

    def next_arrival(self, t: float, stop: float) -> float | None:
        while t < stop:
            end = (t // BLOCK + 1) * BLOCK
            lam = self.rate(t)
            if lam > 0.0:
                nt = t + self.rng.expovariate(lam)
                if nt < end:
                    return nt
            t = end
        return None


# --- the world ----------------------------------------------------------------------------------


@dataclass(eq=False)
class Agent:
    key: str
    traffic: Traffic
    rng: random.Random
    model: str
    start: float
    stop: float
    source: str
    clean: bool
    facts: RequestFacts
    counter: int = 0
    incident: Incident | None = None
    stolen_share: float = 0.0
    migrate_at: float = math.inf
    creep_from: float = math.inf
    jump_at: float = math.inf
    silent_from: float = math.inf  # a looping bot stops its normal work
    silent_until: float = math.inf


class World:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.t0 = EVAL_START - cfg.history_days * DAY
        self.t_eval = EVAL_START
        self.t_end = EVAL_START + cfg.weeks * 7 * DAY
        self.engine = TrustEngine(clock=lambda: self.now)
        self.now = self.t0
        self.heap: list[tuple[float, int, Any, Any]] = []
        self.seq = 0
        self.agents: dict[str, Agent] = {}
        self.events: dict[str, list[TrustEvent]] = {}
        self.incidents: list[Incident] = []
        self.clean = CleanStats()
        self.samples: list[int] = []  # wall ns of before_request + after_request
        self.cpu_samples: list[int] = []  # the same, in this thread's CPU time
        self.requests = 0
        self.outage_agents: set[str] = set()
        self.outages: list[tuple[float, float]] = []
        self._populate()

    # -- setup --
    def push(self, t: float, handler: Any, payload: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, handler, payload))

    def add_agent(
        self,
        key: str,
        kind: str,
        base: float,
        *,
        start: float,
        stop: float,
        clean: bool,
        model: str = "gpt-4o",
        registered: float | None = None,
    ) -> Agent:
        rng = random.Random(f"{self.cfg.seed}:{key}")
        agent = Agent(
            key,
            Traffic(kind, rng, base),
            rng,
            model,
            start,
            stop,
            f"src-{key}-1",
            clean,
            RequestFacts(CHAT, "/v1/chat/completions", model),
        )
        self.agents[key] = agent
        identity = Identity(key, "team", "production", verification="token")
        self.engine.register(
            key, created_at=start if registered is None else registered, identity=identity
        )
        first = agent.traffic.next_arrival(start, stop)
        if first is not None:
            self.push(first, self.arrive, agent)
        return agent

    def _populate(self) -> None:
        cfg, rng = self.cfg, self.rng
        counts = [max(1, round(cfg.agents * share)) for _, share in SHARES]
        counts[0] += cfg.agents - sum(counts)
        bases = {
            "nightly": (0.05, 0.3),
            "interactive": (0.02, 0.12),
            "bursty": (0.005, 0.03),
            "sparse": (0.1, 0.1),
        }
        n = 0
        for (kind, _), count in zip(SHARES, counts, strict=True):
            for _ in range(count):
                base = rng.uniform(*bases[kind])
                model = rng.choice(("gpt-4o", "gpt-4o", "gpt-4o-mini"))
                agent = self.add_agent(
                    f"{kind}-{n:03d}",
                    kind,
                    base,
                    start=self.t0,
                    stop=self.t_end,
                    clean=True,
                    model=model,
                )
                if n % 7 == 3:
                    agent.traffic.step_at = rng.uniform(self.t_eval, self.t_end)
                if n % 9 == 4:
                    agent.migrate_at = rng.uniform(self.t_eval, self.t_end)
                n += 1
        self.clean.agents = n
        self.clean.agent_weeks = n * cfg.weeks
        for day, hour in ((1, 23.5), (2, 15.0)):  # one outage at night, one by day
            begin = self.t_eval + day * DAY + hour * HOUR
            self.outages.append((begin, begin + 20 * 60))
        everyone = sorted(self.agents)
        self.outage_agents = set(rng.sample(everyone, int(0.6 * len(everyone))))
        for k in range(cfg.incidents):
            for kind in INCIDENT_KINDS:
                self._inject(kind, k)
        self.push(self.t0 + 60.0, self.tick)

    def _night_time(self, agent: Agent, k: int) -> float:
        day = int(self.t_eval // DAY) + (k % max(1, self.cfg.weeks * 7 - 1))
        jitter, _ = agent.traffic.night(day)
        return (
            day * DAY + agent.traffic.start_hour * HOUR + jitter + self.rng.uniform(0.5, 4.0) * HOUR
        )

    def _inject(self, kind: str, k: int) -> None:
        rng, name = self.rng, f"{kind}-{k}"
        history = self.t_eval - 4 * DAY  # first traffic; registered 8 days before evaluation
        clean = [a for a in self.agents.values() if a.clean]
        if kind.startswith("loop"):
            agent = self.add_agent(
                name,
                "nightly",
                0.5,
                start=history,
                stop=self.t_end,
                clean=False,
                registered=self.t_eval - 8 * DAY,
            )
            start = self._night_time(agent, k)
            rate = {"loop-38x": 19.0, "loop-38x-diverse": 19.0, "loop-6x": 3.0, "loop-2x-dup": 1.0}[
                kind
            ]
            mode = {
                "loop-38x": "identical",
                "loop-38x-diverse": "diverse",
                "loop-6x": "diverse",
                "loop-2x-dup": "near",
            }[kind]
            inc = Incident(kind, name, start, start + 7 * HOUR)
            inc.pico_uncontained = int(rate * 7 * HOUR) * CALL
            agent.silent_from, agent.silent_until = start, inc.end
            agent.stop = inc.end + HOUR
            self.push(start, self.loop_call, (agent, inc, rate, mode))
        elif kind == "model-jump":
            agent = self.add_agent(
                name,
                "nightly",
                rng.uniform(0.2, 0.5),
                start=history,
                stop=self.t_end,
                clean=False,
                registered=self.t_eval - 8 * DAY,
            )
            start = self._night_time(agent, k)
            inc = Incident(kind, name, start, start + 3 * HOUR)
            agent.jump_at, agent.stop = start, inc.end
        elif kind == "cost-creep":
            agent = self.add_agent(
                name,
                rng.choice(("nightly", "interactive")),
                rng.uniform(0.05, 0.15),
                start=self.t0,
                stop=self.t_end,
                clean=False,
            )
            inc = Incident(kind, name, self.t_eval, self.t_end)
            agent.creep_from = self.t_eval
        elif kind == "stolen-token":
            agent = self.add_agent(
                name,
                "interactive",
                rng.uniform(0.05, 0.2),
                start=history,
                stop=self.t_end,
                clean=False,
                registered=self.t_eval - 8 * DAY,
            )
            start = self._business_time(agent, k)
            inc = Incident(kind, name, start, start + 2 * HOUR)
            agent.stop = inc.end + HOUR
            self.push(start, self.thief_call, (agent, inc))
        elif kind == "spoof-flood":
            victim = clean[(2 * k) % len(clean)]
            start = self.t_eval + rng.uniform(1.0, 6.0) * DAY
            inc = Incident(kind, f"attacker-{k}", start, start + 600.0, victim=victim.key)
            self.push(start, self.spoof_call, inc)
        else:  # mismatch-flood: agent A's valid token declaring B's name
            agent = self.add_agent(
                name,
                "interactive",
                rng.uniform(0.02, 0.1),
                start=history,
                stop=self.t_end,
                clean=False,
                registered=self.t_eval - 8 * DAY,
            )
            victim = clean[(2 * k + 1) % len(clean)]
            start = self._business_time(agent, k)
            inc = Incident(kind, name, start, start + 600.0, victim=victim.key)
            self.push(start, self.mismatch_call, inc)
        agent_key = inc.agent
        if agent_key in self.agents:
            self.agents[agent_key].incident = inc
        self.incidents.append(inc)

    def _business_time(self, agent: Agent, k: int) -> float:
        for _ in range(1000):
            t = self.t_eval + self.rng.uniform(0, self.cfg.weeks * 7 - 0.5) * DAY
            if agent.traffic.rate(t) > 0 and agent.traffic.rate(t + 2 * HOUR) > 0:
                return t
        return self.t_eval + DAY

    # -- the request path --
    def send(
        self,
        agent: Agent,
        prompt: str,
        source: str,
        model: str,
        tin: int,
        tout: int,
        *,
        legit: bool,
        retry: int = 0,
    ) -> tuple[bool, int]:
        """One request through the engine; returns (admitted, cost in pico)."""
        t = self.now
        engine = self.engine
        agent.facts.prompt_hash = prompt
        sample = self.requests % self.cfg.sample_every == 0
        self.requests += 1
        if sample:
            w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        gate = engine.before_request(agent.key, agent.facts, t, source=source)
        if sample:
            c1, w1 = time.thread_time_ns(), time.perf_counter_ns()
            wall_ns, cpu_ns = w1 - w0, c1 - c0
        cost, status, upstream = 0, 200, False
        if gate.allowed:
            if (
                self.outages
                and agent.key in self.outage_agents
                and self._in_outage(t)
                and agent.rng.random() < 0.8
            ):
                status = 429 if agent.rng.random() < 0.5 else 503
                upstream = status == 503
            elif agent.rng.random() < 0.01:
                status = 400
            if status == 200:
                pin, pout = PRICES[model]
                cost = tin * pin + tout * pout
            obs = Observation(status, cost, model, tin, tout, upstream_fault=upstream)
            if sample:
                w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            events = engine.after_request(agent.key, obs, t)
            if sample:
                c1, w1 = time.thread_time_ns(), time.perf_counter_ns()
                self.samples.append(wall_ns + w1 - w0)
                self.cpu_samples.append(cpu_ns + c1 - c0)
            if events:
                self.record(events)
        if gate.events:
            self.record(gate.events)
        if legit and agent.clean and t >= self.t_eval:
            self.clean.requests += 1
            if not gate.allowed:
                self.clean.denied += 1
        if legit and retry < 2 and (status >= 429 or (not gate.allowed and gate.status == 429)):
            # as the OpenAI SDK: honour Retry-After up to 60 s, else exponential backoff
            backoff = (2.0**retry) * (1.0 + agent.rng.random())
            if not gate.allowed and gate.retry_after is not None and gate.retry_after <= 60:
                backoff = gate.retry_after + agent.rng.random()
            self.push(t + backoff, self.retry, (agent, prompt, source, model, tin, tout, retry + 1))
        return gate.allowed, cost

    def _in_outage(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.outages)

    def record(self, events: list[TrustEvent]) -> None:
        for e in events:
            self.events.setdefault(e.agent, []).append(e)

    def normal_request(self, agent: Agent) -> None:
        t, rng = self.now, agent.rng
        agent.counter += 1
        if rng.random() < 0.02:
            prompt = f"{agent.key}:common{rng.randrange(3)}"
        else:
            prompt = f"{agent.key}:{agent.counter}"
        tin = int(math.exp(rng.gauss(7.6, 0.4)))  # ~2000 tokens in
        tout = int(math.exp(rng.gauss(6.2, 0.5)))  # ~500 out
        model = agent.model
        if t >= agent.jump_at:
            model = "o1"
        base_tin = tin
        base_tout = tout
        if t >= agent.creep_from:  # cost per call grows: both prompt and answer get longer
            growth = (1.0 + self.cfg.creep_per_day) ** ((t - agent.creep_from) / DAY)
            tin, tout = int(tin * growth), int(tout * growth)
        source = agent.source if t < agent.migrate_at else f"src-{agent.key}-2"
        admitted, cost = self.send(agent, prompt, source, model, tin, tout, legit=True)
        inc = agent.incident
        if (
            inc is not None
            and inc.start <= t < inc.end
            and inc.kind in ("model-jump", "cost-creep")
        ):
            inc.attempts += 1
            price_in, price_out = PRICES[model]
            usual_in, usual_out = PRICES[agent.model]
            excess = (
                tin * price_in + tout * price_out - (base_tin * usual_in + base_tout * usual_out)
            )
            inc.pico_uncontained += excess  # what it would have cost with no controls
            if admitted:
                self._spend(inc, excess if cost else 0, t)
            else:
                inc.refused += 1

    def _spend(self, inc: Incident, pico: int, t: float) -> None:
        inc.pico_total += pico
        inc.spend.append((t, pico))  # split at throttle and disable once the events are known

    # -- handlers (each runs at self.now) --
    def arrive(self, agent: Agent) -> None:
        if not agent.clean and self.engine.tier(agent.key) == "quarantined":
            return  # a disabled incident agent stays down; the operator is paged
        if not agent.silent_from <= self.now < agent.silent_until:
            self.normal_request(agent)
        nxt = agent.traffic.next_arrival(self.now, agent.stop)
        if nxt is not None:
            self.push(nxt, self.arrive, agent)

    def retry(self, payload: tuple[Any, ...]) -> None:
        agent, prompt, source, model, tin, tout, n = payload
        self.send(agent, prompt, source, model, tin, tout, legit=True, retry=n)

    def loop_call(self, payload: tuple[Any, ...]) -> None:
        agent, inc, rate, mode = payload
        t = self.now
        if t >= inc.end or self.engine.tier(agent.key) == "quarantined":
            return
        inc.attempts += 1
        if mode == "identical":
            prompt = LOOP_HASH
        elif mode == "near":
            prompt = prompt_hash(CHAT, near_duplicate(inc.attempts, t))
        else:
            prompt = f"{agent.key}:loop:{inc.attempts}"
        admitted, _ = self.send(agent, prompt, agent.source, "gpt-4o", 2000, 500, legit=False)
        if admitted:
            self._spend(inc, CALL, t)
        else:
            inc.refused += 1
        self.push(t + 1.0 / rate, self.loop_call, payload)

    def thief_call(self, payload: tuple[Any, ...]) -> None:
        agent, inc = payload
        t = self.now
        if t >= inc.end or self.engine.tier(agent.key) == "quarantined":
            return
        inc.attempts += 1
        rng = agent.rng
        tin, tout = int(math.exp(rng.gauss(7.6, 0.4))), int(math.exp(rng.gauss(6.2, 0.5)))
        admitted, cost = self.send(
            agent, f"thief:{inc.attempts}", "src-thief", agent.model, tin, tout, legit=False
        )
        inc.pico_uncontained += tin * PRICES[agent.model][0] + tout * PRICES[agent.model][1]
        if admitted:
            self._spend(inc, cost, t)
        else:
            inc.refused += 1
        lam = 0.5 * max(agent.traffic.rate(t), 0.01)
        self.push(t + rng.expovariate(lam), self.thief_call, payload)

    def _victim_state(self, inc: Incident, before: bool) -> None:
        info = self.engine.explain(inc.victim, self.now)
        if before:
            inc.victim_bad_before, inc.victim_tier_before = info["score"]["bad"], info["tier"]
        else:
            inc.victim_bad_after, inc.victim_tier_after = info["score"]["bad"], info["tier"]

    def spoof_call(self, inc: Incident) -> None:
        """No token, the victim's name: the gateway's credential check refuses (401)."""
        if inc.attempts == 0:
            self._victim_state(inc, before=True)
        if self.now >= inc.end:
            self._victim_state(inc, before=False)
            return
        inc.attempts += 1
        inc.refused += 1
        if inc.first_refused is None:
            inc.first_refused = True
        self.record(self.engine.record_failed_claim(inc.victim, self.now, source="src-attacker"))
        self.push(self.now + 0.1, self.spoof_call, inc)

    def mismatch_call(self, inc: Incident) -> None:
        """A's valid token with B's declaration: 403 identity_mismatch, a strike on A."""
        if inc.attempts == 0:
            self._victim_state(inc, before=True)
        if self.now >= inc.end:
            self._victim_state(inc, before=False)
            return
        inc.attempts += 1
        inc.refused += 1
        self.record(self.engine.record_identity_mismatch(inc.agent, inc.victim, self.now))
        self.push(self.now + 1.0, self.mismatch_call, inc)

    def tick(self, _: Any = None) -> None:
        events = self.engine.tick(self.now)
        if events:
            self.record(events)
        if self.now + 60.0 < self.t_end:
            self.push(self.now + 60.0, self.tick)

    # -- run and measure --
    def run(self) -> None:
        heap = self.heap
        pop = heapq.heappop
        while heap:
            t, _, handler, payload = pop(heap)
            if t >= self.t_end:
                break
            self.now = t
            handler(payload)

    def result(self, wall: float) -> SimResult:
        for inc in self.incidents:
            for e in self.events.get(inc.agent, []):
                if e.at < inc.start:
                    continue
                wanted = RELEVANT.get(inc.kind)
                if wanted is not None and e.detector not in wanted:
                    continue
                if inc.first_alert is None and e.kind in (ALERT, THROTTLE, DISABLE):
                    inc.first_alert = e.at
                if inc.throttle is None and e.kind == THROTTLE:
                    inc.throttle = e.at
                if inc.disable is None and e.kind == DISABLE:
                    inc.disable = e.at
            for t, pico in inc.spend:
                if inc.throttle is None or t < inc.throttle:
                    inc.pico_to_throttle += pico
                elif inc.disable is None or t < inc.disable:
                    inc.pico_contained += pico
        c = self.clean
        for agent in self.agents.values():
            if not agent.clean:
                continue
            tier = self.engine.tier(agent.key)
            c.tiers_at_end[tier] = c.tiers_at_end.get(tier, 0) + 1
            for e in self.events.get(agent.key, []):
                if (
                    e.tier_after != e.tier_before
                    and e.tier_after in ("standard", "trusted")
                    and e.kind == "tier_change"
                ):
                    c.onboarding_hours.setdefault(e.tier_after, []).append(
                        (e.at - agent.start) / HOUR
                    )
                if e.at < self.t_eval or e.detector == "failed_claim":
                    continue
                if e.kind == THROTTLE:
                    c.throttles += 1
                    c.throttled_by[e.detector] = c.throttled_by.get(e.detector, 0) + 1
                c.disables += e.kind == DISABLE
                c.alerts += e.kind == ALERT and e.severity != "info"
                c.tier_changes += e.tier_before != e.tier_after
        overhead = {"n": float(len(self.samples))}
        for name, values in (("wall", self.samples), ("cpu", self.cpu_samples)):
            ordered = sorted(values) or [0]
            overhead[f"{name}_p50"] = ordered[len(ordered) // 2] / 1000.0
            overhead[f"{name}_p99"] = (
                ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000.0
            )
        return SimResult(self.cfg, self.incidents, c, overhead, self.requests, wall)


RELEVANT = {  # which detectors count as noticing an incident (None: any)
    "cost-creep": ("cost_creep",),
    "model-jump": ("model_jump", "cost_rate"),
    "stolen-token": ("source",),
    "mismatch-flood": ("identity_mismatch",),
}

LOOP_BODY = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "You rank products for the recommendation feed."},
        {"role": "user", "content": "Rank these 20 products for user segment B."},
    ],
}
LOOP_HASH = prompt_hash(CHAT, LOOP_BODY)


def near_duplicate(step: int, t: float) -> dict[str, Any]:
    """The 2x loop's body: a timestamp and a request id change, nothing else does."""
    stamp = datetime.fromtimestamp(t, UTC).isoformat()
    request = f"{step:08x}-0000-4000-8000-{step:012x}"
    return {
        "model": "gpt-4o",
        "user": f"run-{step}",
        "messages": [
            {"role": "system", "content": "You reconcile invoices."},
            {"role": "user", "content": f"[{stamp}] request {request}: reconcile batch 42 again."},
        ],
    }


def run(cfg: SimConfig) -> SimResult:
    began = time.perf_counter()
    world = World(cfg)
    world.run()
    return world.result(time.perf_counter() - began)


def measure_overhead(
    n: int = 20000, seed: int = 1, agents: int = 50, rounds: int = 3
) -> dict[str, float]:
    """before_request + after_request over `agents` established agents, in µs.

    Requests arrive at 1/s in total, each from a random agent, after two days of warm-up
    (out of learning mode, promoted to standard). `cpu_*` is this thread's CPU time (what
    the engine costs); `wall_*` also contains whatever else the machine did meanwhile.
    Like `timeit`, it reports the best of `rounds` rounds of `n` requests, so that other
    processes on a shared machine inflate the figure as little as possible.
    """
    rng = random.Random(seed)
    t = EVAL_START
    engine = TrustEngine(clock=lambda: t)
    keys = [f"bench-{i}" for i in range(agents)]
    for key in keys:
        identity = Identity(key, "team", "production", verification="token")
        engine.register(key, created_at=t - 30 * DAY, identity=identity)
    facts = RequestFacts(CHAT, "/v1/chat/completions", "gpt-4o")
    obs = Observation(200, CALL, "gpt-4o", 2000, 500)
    cpu: list[int] = []
    wall: list[int] = []
    warmup = 2 * 86400
    best: dict[str, float] = {}
    for i in range(warmup + rounds * n):
        t += rng.expovariate(1.0)
        key = keys[rng.randrange(agents)]
        facts.prompt_hash = f"p{i}"
        w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        gate = engine.before_request(key, facts, t, source="s1")
        if gate.allowed:
            engine.after_request(key, obs, t)
        c1, w1 = time.thread_time_ns(), time.perf_counter_ns()
        if i >= warmup:
            cpu.append(c1 - c0)
            wall.append(w1 - w0)
        if i % 60 == 0:
            engine.tick(t)
        if len(cpu) == n:
            cpu.sort()
            wall.sort()
            result = {
                "cpu_p50": cpu[n // 2] / 1000.0,
                "cpu_p99": cpu[int(n * 0.99)] / 1000.0,
                "wall_p50": wall[n // 2] / 1000.0,
                "wall_p99": wall[int(n * 0.99)] / 1000.0,
            }
            if not best or result["wall_p99"] < best["wall_p99"]:
                best = result
            cpu, wall = [], []
    best["standard"] = float(sum(engine.tier(k) == "standard" for k in keys)) / agents
    return best


# --- report -------------------------------------------------------------------------------------


def _s(v: float | None) -> str:
    if v is None:
        return "never"
    return f"{v:.0f} s" if v < 600 else f"{v / 60:.0f} min" if v < 2 * DAY else f"{v / DAY:.1f} d"


def _usd(pico: int) -> str:
    return f"${from_pico(pico).quantize(Decimal('0.01'))}"


def render(res: SimResult, command: str) -> str:
    cfg = res.config
    lines = [
        "# Trust simulation results",
        "",
        f"Command: `{command}`  ",
        f"Seed {cfg.seed}; {res.clean.agents} clean agents, {cfg.history_days} days of history, "
        f"{cfg.weeks} evaluation week(s); {cfg.incidents} incident(s) of each kind; "
        f"{res.requests:,} requests through the real engine in {res.wall_s:.1f} s wall.",
        "",
        "## Incidents (worst case over instances; times from incident start)",
        "",
        "| incident | n | first alert | throttle | disable | $ to throttle | $ while contained "
        "(per min) | $ total | $ uncontained |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in INCIDENT_KINDS:
        items = res.by_kind(kind)
        if not items:
            continue

        def worst(attr: str, items: list[Incident] = items) -> float | None:
            values = [i.delay(getattr(i, attr)) for i in items]
            return (
                None if any(v is None for v in values) else max(v for v in values if v is not None)
            )

        to_thr = max(i.pico_to_throttle for i in items)
        contained = max(i.pico_contained for i in items)
        per_min = max(
            Decimal(i.pico_contained) / Decimal(10**12) / Decimal(max(i.contained_minutes, 1e-9))
            for i in items
        )
        per_min_s = (
            f"{_usd(contained)} ({per_min.quantize(Decimal('0.001'))}/min)"
            if any(i.throttle for i in items)
            else "-"
        )
        extra = ""
        if kind in ("spoof-flood", "mismatch-flood"):
            extra = (
                " victim unharmed" if all(i.victim_unharmed for i in items) else " VICTIM HARMED"
            )
        total = max(i.pico_total for i in items)
        uncontained = max(i.pico_uncontained for i in items)
        lines.append(
            f"| {kind}{extra} | {len(items)} | {_s(worst('first_alert'))} | "
            f"{_s(worst('throttle'))} | {_s(worst('disable'))} | {_usd(to_thr)} | {per_min_s} | "
            f"{_usd(total)} | {_usd(uncontained)} |"
        )
    c = res.clean
    lines += [
        "",
        "Spoof flood: refused by the credential check on the first request (modelled), "
        "reported to the claimed agent as info alerts only. Mismatch flood: counted against the "
        "token's own agent (disabled at the 5th strike), never the claimed name.",
        "",
        "## Clean agents (evaluation window, hard negatives included)",
        "",
        "| agent-weeks | wrongful throttles / agent-week | wrongful disables / agent-week | "
        "tier changes / agent-week | alerts / agent-week | legit requests denied |",
        "|---|---|---|---|---|---|",
        f"| {c.agent_weeks:.0f} | {c.per_week(c.throttles):.3f} | {c.per_week(c.disables):.3f} | "
        f"{c.per_week(c.tier_changes):.3f} | {c.per_week(c.alerts):.3f} | "
        f"{c.denied}/{c.requests} ({100 * c.denied / max(c.requests, 1):.3f}%) |",
        "",
        f"Wrongful throttles by detector: {dict(sorted(c.throttled_by.items())) or 'none'}. "
        f"Tiers at the end: {dict(sorted(c.tiers_at_end.items()))}. "
        + "; ".join(
            f"median hours to {tier}: {statistics.median(h):.0f}"
            for tier, h in sorted(c.onboarding_hours.items())
            if h
        ),
        "",
        "## Targets",
        "",
        "| target | observed | limit | met |",
        "|---|---|---|---|",
    ]
    for name, (value, limit, ok) in res.targets().items():
        lines.append(f"| {name} | {value:.3f} | {limit:g} | {'yes' if ok else 'NO'} |")
    oh = res.overhead_us
    lines += [
        "",
        f"Overhead sampled in the run (one request in {cfg.sample_every}, {oh['n']:.0f} samples): "
        f"p50 {oh['cpu_p50']:.1f} µs CPU, {oh['wall_p50']:.1f} µs wall. Its tail is not the "
        "engine's: it is dominated by garbage collection of the simulator's own heap and by "
        "other processes; the micro-benchmark below isolates the engine.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--agents", type=int, default=None, help="clean agents")
    parser.add_argument("--weeks", type=int, default=None, help="evaluation weeks")
    parser.add_argument("--history-days", type=int, default=None)
    parser.add_argument("--incidents", type=int, default=None, help="instances of each incident")
    parser.add_argument("--small", action="store_true", help="the CI-sized run")
    parser.add_argument("--write", action="store_true", help="write into bench/RESULTS.md")
    args = parser.parse_args(argv)
    cfg = SimConfig.small(args.seed) if args.small else SimConfig(seed=args.seed)
    for name in ("agents", "weeks", "history_days", "incidents"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    result = run(cfg)
    command = "python bench/trust_sim.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = result.table(command.strip())
    bench = measure_overhead()
    text += (
        "Micro-benchmark (50 established agents, best of 3 rounds of 20,000 requests): CPU time "
        f"p50 {bench['cpu_p50']:.1f} µs, p99 {bench['cpu_p99']:.1f} µs; wall clock "
        f"p50 {bench['wall_p50']:.1f} µs, p99 {bench['wall_p99']:.1f} µs "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs while measured).\n"
    )
    print(text)
    if args.write:
        from results import demote, write_section  # bench/ is on sys.path when run

        write_section("trust", demote(text))
    return 0 if all(ok for _, _, ok in result.targets().values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""`Gateway`: the composition root holding every long-lived part of a running gateway.

Built by `create_app`; the pipeline receives it through the app key. Nothing here
does per-request I/O; the store is only touched by the recorder thread and by the
change poller (one cheap version query per interval, or sooner when the Redis change
feed announces a change: `gateway.changes`). Shared counters are wrapped by
`counters.failover` (`counters.on_failure`); the watcher owns the feed and closes the
counters when the app shuts down.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time

import aiohttp
from aiohttp import web
from multidict import CIMultiDictProxy

from agentctl.audit.redaction import Redactor
from agentctl.config import Settings
from agentctl.counters import open_counters
from agentctl.counters.failover import FailoverCounters, guard
from agentctl.errors import GatewayError
from agentctl.gateway.call import Call
from agentctl.gateway.changes import ChangeFeed, announce
from agentctl.gateway.directory import Directory, UnknownKey
from agentctl.gateway.governance import Governance
from agentctl.gateway.pools import Pools
from agentctl.gateway.proxies import TrustedProxies
from agentctl.gateway.routing import Router, effective_lane
from agentctl.gateway.trustkeeper import TrustKeeper
from agentctl.identity import Identity
from agentctl.ids import random_hex
from agentctl.metrics import Metrics, TierReading
from agentctl.pricing import Pricer
from agentctl.store.recorder import Recorder
from agentctl.store.sql import Store
from agentctl.tracing import Tracer
from agentctl.trust import Gate

log = logging.getLogger("agentctl.gateway")
UNKNOWN_KEY_TTL_S = 1.0  # a key a refresh did not find is refused without another
MAX_UNPRICED_WARNINGS = 1_000  # distinct models warned about, then one last warning


class Gateway:
    def __init__(self, settings: Settings, store: Store, recorder: Recorder) -> None:
        self.settings = settings
        self.store = store
        self.recorder = recorder
        self.limits = settings.limits
        self.proxies = TrustedProxies(settings.trusted_proxies)
        self.router = Router(settings.upstreams, settings.pools, settings.routing)
        self.pools = Pools(settings.upstreams, settings.routing.health)
        bodies = settings.audit.bodies
        self.redactor = (
            Redactor(detect=bodies.redact, custom=bodies.custom) if bodies.store else None
        )
        self.pricer = Pricer(dict(settings.pricing.overrides))
        self.directory = Directory(
            store.registry(),
            mode=settings.identity.mode,
            purposes=frozenset(settings.identity.purposes),
            gateway_key=settings.gateway_key,
        )
        options = settings.counters_options
        self.counters = guard(
            open_counters(
                settings.counters, prefix=options.prefix, timeout=options.timeout_ms / 1000
            ),
            on_failure=options.on_failure,
        )
        self.governance = Governance(settings, store, self.directory, self.counters, self.pricer)
        if isinstance(self.counters, FailoverCounters):
            self.counters.reseed = self.governance.seed
        self.session: aiohttp.ClientSession | None = None
        self.secrets: dict[str, str | None] = {
            u.name: settings.upstream_secret(u) for u in settings.upstreams
        }
        self.state_version = store.state_version()
        self._catching_up: asyncio.Future[None] | None = None
        self._refreshing = asyncio.Lock()
        self._unknown_keys: dict[str, float] = {}  # key id -> when a refresh missed it
        self.unpriced_seen: set[str] = set()
        self.inflight = 0
        self.cutting = False  # the SIGTERM drain ran out: what ends now was cut by us
        self.trust = TrustKeeper(
            settings.trust, store, self.directory, recorder, instance=_instance_id()
        )
        self.trust.webhook_for = self._webhook_for
        if ChangeFeed.for_settings(settings) is not None:  # Redis: peers hear it at once
            self.trust.announce = lambda topic: announce(topic, settings=settings)
        self.governance.on_trip = lambda trip, rid: self.trust.breaker(
            trip.agent, trip.rule_id, trip.spent_pico, trip.threshold_pico, rid
        )
        self.tracer = Tracer.configure(settings.tracing)  # None unless tracing.enabled
        self.metrics = Metrics(
            settings.metrics,
            inflight=lambda: self.inflight,
            queue_depth=lambda: self.recorder.pending,
            observers=[self.tracer.annotate] if self.tracer else [],
        )
        self.metrics.tiers = self
        self.metrics.upstreams = self.pools

    def tier_readings(self) -> list[TierReading]:
        engine = self.trust.engine
        return [TierReading(name, engine.tier(name)) for name in engine.agents()]

    def _webhook_for(self, agent: str) -> str | None:
        known = self.directory.agent(agent)
        identity = Identity(agent, known.owner if known else "", known.purpose if known else "")
        alerts = self.governance.governor.effective(identity).rules.alerts
        return alerts.webhook if alerts is not None else None

    def new_call(self, request: web.BaseRequest) -> Call:
        peer = self.proxies.client(request.remote or "", request.headers)
        agent = request.headers.get("User-Agent", "")
        return Call(
            source=f"{_network(peer)}|{agent.split(' ', 1)[0][:40]}",
            request_id="req_" + random_hex(12),
            ts_us=time.time_ns() // 1000,
            started=time.perf_counter(),
            path=request.path,
            client=peer,
            policy_version=self.governance.version,
        )

    def begin(self, call: Call) -> None:
        """Journal the `begin` line before forwarding. A journal that cannot be written
        (disk full, I/O error) refuses the request under `audit.on_journal_failure:
        closed`: nothing is forwarded that a crash could leave unaccounted."""
        try:
            self.recorder.begin(call.begin_row())
        except OSError as exc:
            if self.settings.audit.on_journal_failure == "open":
                if self.recorder.journal_failing is None:
                    log.error("audit journal write failed (%s); serving anyway (open)", exc)
                self.recorder.journal_failing = exc
                return
            self.recorder.journal_failing = exc
            raise GatewayError(
                503,
                "audit_unavailable",
                f"the gateway cannot write its audit journal ({exc.strerror or exc}); it "
                "refuses to forward requests it could not account for. Retry later; an "
                f"operator must free space under {self.settings.journal_path}",
                headers={"Retry-After": "5"},
            ) from None

    def lane_for(self, call: Call, gate: Gate | None) -> str:
        """Policy's lane, moved by trust (`routing.effective_lane`); shown to the client."""
        policy_lane = call.admission.lane if call.admission is not None else "standard"
        lane = effective_lane(
            policy_lane,
            gate.lane if gate is not None else None,
            trust_lanes=self.settings.routing.trust_lanes,
        )
        call.extra_headers["x-agentctl-lane"] = lane
        return lane

    def own_headers(self, call: Call) -> dict[str, str]:
        headers = {"x-request-id": call.request_id}
        if call.identity is not None:
            headers["x-agentctl-agent"] = call.identity.name
            headers["x-agentctl-verification"] = call.identity.verification
        headers.update(call.extra_headers)
        return headers

    async def refresh(self) -> bool:
        """Reload agents and credentials if an operator changed anything (one at a time:
        the poller and a token catch-up must not apply the same trust override twice)."""
        async with self._refreshing:
            return await self._refresh()

    async def _refresh(self) -> bool:
        version = await asyncio.to_thread(self.store.state_version)
        if version == self.state_version:
            return False
        registry = await asyncio.to_thread(self.store.registry)
        previous = self.directory.registry
        self.directory.replace(registry)
        self.trust.sync_agents(registry, previous)
        await self.trust.apply_overrides()
        await self.governance.reload()
        self.state_version = version
        return True

    async def identify(self, headers: CIMultiDictProxy[str]) -> Identity:
        """`Directory.identify`; an agent token whose key is not loaded may have been
        issued since the last poll (`agents register`, `rotate`), so the registry is
        refreshed once before it is refused. A key still unknown after that is refused
        at once for `UNKNOWN_KEY_TTL_S` (a client retrying a revoked token in a loop)."""
        try:
            return self.directory.identify(headers)
        except UnknownKey as err:
            missed = self._unknown_keys.get(err.key_id)
            if missed is not None and time.monotonic() - missed < UNKNOWN_KEY_TTL_S:
                raise
        await self.catch_up()
        try:
            return self.directory.identify(headers)
        except UnknownKey as err:
            if len(self._unknown_keys) >= 10_000:
                self._unknown_keys.clear()
            self._unknown_keys[err.key_id] = time.monotonic()
            raise

    async def catch_up(self) -> None:
        """Refresh now; concurrent callers share one refresh."""
        if self._catching_up is None:
            self._catching_up = asyncio.ensure_future(self._catch_up())
        await asyncio.shield(self._catching_up)

    async def _catch_up(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:  # the poller will try again; the caller gets its 401
            log.warning("could not refresh agents for a new token: %s", exc)
        finally:
            self._catching_up = None

    async def watch(self) -> None:
        interval = self.settings.policy_poll_ms / 1000
        feed = ChangeFeed.for_settings(self.settings)
        if feed is not None:
            feed.start()
        try:
            while True:
                if feed is None:
                    await asyncio.sleep(interval)
                else:
                    await feed.wait(interval)
                try:
                    await self.refresh()
                except Exception as exc:  # store briefly unavailable: keep serving from cache
                    log.warning("could not poll the store for changes: %s", exc)
                if isinstance(self.counters, FailoverCounters):
                    await self.counters.maintain()
        finally:
            if feed is not None:
                await feed.close()
            await self.counters.close()

    def warn_unpriced(self, model: str, provider: str) -> None:
        key = f"{provider}/{model}"
        if key in self.unpriced_seen:
            return
        if len(self.unpriced_seen) >= MAX_UNPRICED_WARNINGS:  # an upstream serving any name
            if len(self.unpriced_seen) == MAX_UNPRICED_WARNINGS:
                self.unpriced_seen.add("")  # say it once
                log.warning(
                    "more than %d models without a price: no more warnings or events for "
                    "new ones (their records still say unpriced)",
                    MAX_UNPRICED_WARNINGS,
                )
            return
        self.unpriced_seen.add(key)
        log.warning(
            "model %r (provider %s) has no price; requests are recorded as unpriced. "
            "Add it under pricing.overrides in agentctl.yaml",
            model,
            provider,
        )
        self.recorder.record(
            {
                "kind": "unpriced_model",
                "request_id": "evt_" + secrets.token_hex(12),
                "ts_us": time.time_ns() // 1000,
                "model": model,
                "upstream": provider,
                "outcome": "event",
                "actor": "gateway",
                "reason": "no price in genai-prices or pricing.overrides",
            }
        )


def _network(address: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) of a client address: a coarse, stable fingerprint."""
    if ":" in address:
        return ":".join(address.split(":")[:3])
    return address.rsplit(".", 1)[0]


def _instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"

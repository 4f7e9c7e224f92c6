"""The gateway side of trust: the engine's verdicts applied, recorded and persisted.

`TrustEngine` decides (pure, in memory); `TrustKeeper` acts on its events:
- every event is an audit record (`kind = "trust"`) with detector, value, threshold,
  tiers before/after, request id, evidence and the command that would undo it;
- `disable` events latch the agent disabled in the store (every gateway refuses it),
  repeated identity mismatches also revoke the offending credential;
- alerts go to the log and, when the agent's policy names one, a webhook;
- operator overrides (pin, unpin, rebaseline) written by the CLI are applied when the
  store's state version moves, and an operator `enable` lands the agent in probation;
- `tick()` runs every minute; the engine's state is snapshotted to the store so
  `agentctl trust explain` can read it and a restart keeps what was learnt.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import Any

import aiohttp

from agentctl.config import TrustSettings
from agentctl.errors import Refusal
from agentctl.facts import RequestFacts
from agentctl.gateway.call import Call
from agentctl.gateway.directory import Directory
from agentctl.identity import Identity
from agentctl.store import credentials as creds
from agentctl.store.recorder import Recorder
from agentctl.store.sql import Registry, Store
from agentctl.trust import Gate, Observation, TrustConfig, TrustEngine, TrustEvent
from agentctl.trust.signals import measured

log = logging.getLogger("agentctl.trust")
TRUST_ACTOR = "agentctl-trust"


class TrustKeeper:
    def __init__(
        self,
        settings: TrustSettings,
        store: Store,
        directory: Directory,
        recorder: Recorder,
        *,
        instance: str,
    ) -> None:
        self.settings = settings
        self.enabled = settings.enabled
        self.engine = TrustEngine(TrustConfig(**settings.params))
        self.store = store
        self.directory = directory
        self.recorder = recorder
        self.instance = instance
        self.session: aiohttp.ClientSession | None = None
        self.webhook_for: Any = None  # callable(identity) -> url | None, set by the gateway
        self._override_cursor = 0
        # unique per gateway, even for two gateways in one process (tests)
        self._peer_actor = f"{TRUST_ACTOR}@{instance}/{secrets.token_hex(3)}"
        self.announce: Any = None  # callable(topic): pokes the other gateways' change feed
        self._known: set[str] = set()  # agents whose binding the engine has been told
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self, registry: Registry) -> None:
        if not self.enabled:
            return
        state = await asyncio.to_thread(creds.latest_snapshot, self.store)
        if state is not None:
            try:
                self.engine.restore(state)
                self._known.update(self.engine.agents())
            except Exception:  # an old or damaged snapshot must not stop the gateway
                log.exception("could not restore the trust snapshot; starting fresh")
        self.sync_agents(registry, None)
        self._override_cursor = await asyncio.to_thread(creds.last_override_id, self.store)

    def sync_agents(self, registry: Registry, previous: Registry | None) -> None:
        """Tell the engine each registered agent's age and binding, and operator disables
        and enables (an enabled agent lands in probation, whatever it was before)."""
        if not self.enabled:
            return
        for agent in registry.agents.values():
            if previous is not None:
                before = previous.agents.get(agent.name)
                was = before.status if before is not None else "active"
                actor = agent.status_actor or "operator"
                if was == "disabled" and agent.status == "active":
                    events = self.engine.on_enable(agent.name, agent.status_reason or "")
                    self._handle(events, actor=actor)
                elif (
                    was == "active"
                    and agent.status == "disabled"
                    and self.engine.tier(agent.name) != "quarantined"
                ):
                    events = self.engine.on_disable(agent.name, agent.status_reason or "")
                    self._handle(events, actor=actor, latch=False)
            if agent.registered and agent.name not in self._known:
                self.engine.expect(
                    agent.name,
                    created_at=agent.created_at_us / 1e6,
                    identity=Identity(agent.name, agent.owner, agent.purpose, verification="token"),
                )
                self._known.add(agent.name)

    async def apply_overrides(self) -> None:
        if not self.enabled:
            return
        rows = await asyncio.to_thread(creds.overrides_after, self.store, self._override_cursor)
        for row in rows:
            self._override_cursor = row["id"]
            if row["action"] == "pin":
                events = self.engine.pin(
                    row["agent"], row["tier"], row["reason"] or "", ttl=row["ttl_s"]
                )
            elif row["action"] == "unpin":
                events = self.engine.unpin(row["agent"], row["reason"] or "")
            elif row["action"] == "rebaseline":
                events = self.engine.rebaseline(row["agent"], row["reason"] or "")
            elif row["action"] == "contain":
                if row["actor"] != self._peer_actor:  # our own containment, shared
                    events = self.engine.contain_from_peer(
                        row["agent"], row["tier"] or "", origin=row["actor"]
                    )
                    self._handle(events, shared=True)
                continue
            else:
                continue
            for event in events:
                event.automatic = False
            self._handle(events, actor=row["actor"])

    async def run(self, every: float = 60.0, snapshot_every: float = 15.0) -> None:
        """Minute ticks and periodic snapshots, until cancelled."""
        if not self.enabled:
            return
        last_tick = time.monotonic()
        while True:
            await asyncio.sleep(snapshot_every)
            try:
                if time.monotonic() - last_tick >= every:
                    last_tick = time.monotonic()
                    self._handle(self.engine.tick())
                await self.persist()
            except Exception:
                log.exception("trust maintenance failed; will retry")

    async def persist(self) -> None:
        state = json.dumps(self.engine.snapshot(), separators=(",", ":"), default=str)
        await asyncio.to_thread(creds.save_snapshot, self.store, self.instance, state)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.enabled:
            try:
                await self.persist()
            except Exception:
                log.exception("could not save the trust snapshot at shutdown")

    # -- the request path ----------------------------------------------------------------
    def before(self, call: Call, facts: RequestFacts) -> Gate | None:
        if not self.enabled or call.identity is None:
            return None
        identity = call.identity
        gate = self.engine.before_request(
            identity.name,
            facts,
            identity=identity,
            source=call.source,
            request_id=call.request_id,
        )
        if gate.events:
            self._handle(gate.events)
        call.extra_headers["x-agentctl-trust-tier"] = gate.tier
        if not gate.allowed:
            raise Refusal(
                gate.status,
                gate.rule_id,
                gate.message,
                retry_after=gate.retry_after,
                should_retry=False if gate.status == 403 else None,
            )
        return gate

    def after(self, call: Call) -> None:
        if not self.enabled or call.identity is None or not call.forwarded:
            return
        usage = call.usage
        upstream_fault = call.outcome in ("upstream_error", "timeout") or call.status >= 500
        # A client that left before its answer (audited 499) is not a failed request.
        status = 0 if call.outcome == "disconnected" and not call.answered else call.status
        obs = Observation(
            status=status,
            cost_pico=call.cost_pico or 0,
            model=call.upstream_model,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            latency_s=(call.finished or call.started) - call.started,
            error_kind="upstream" if upstream_fault else ("client" if status >= 400 else ""),
            upstream_fault=upstream_fault,
            prompt_hash=call.facts.prompt_hash if call.facts else "",
            request_id=call.request_id,
        )
        self._handle(self.engine.after_request(call.identity.name, obs))

    def mismatch(self, token_agent: Identity, claimed: str, call: Call) -> None:
        if not self.enabled:
            return
        events = self.engine.record_identity_mismatch(
            token_agent.name, claimed, request_id=call.request_id, source=call.source
        )
        self._handle(events)
        if any(e.kind == "disable" for e in events) and token_agent.key_id:
            self._spawn(self._revoke(token_agent.key_id, token_agent.name))

    def failed_claim(self, claimed: str, call: Call, reason: str) -> None:
        if self.enabled and claimed:
            self._handle(
                self.engine.record_failed_claim(claimed, source=call.source, reason=reason)
            )

    def breaker(self, agent: str, rule: str, value: float, threshold: float, rid: str) -> None:
        """A policy breaker tripped: hard evidence for trust (the latch is policy's)."""
        if self.enabled:
            events = self.engine.record_breaker(agent, rule, value, threshold, request_id=rid)
            self._handle(events, latch=False)

    # -- acting on events ----------------------------------------------------------------
    def _handle(
        self,
        events: list[TrustEvent],
        *,
        actor: str = TRUST_ACTOR,
        latch: bool = True,
        shared: bool = False,
    ) -> None:
        for event in events:
            if event.kind == "throttle" and event.automatic and not shared:
                self._spawn(self._share(event))
            self.recorder.record(_event_row(event, actor))
            level = logging.WARNING if event.kind in ("throttle", "disable") else logging.INFO
            log.log(
                level,
                "trust %s of %s by the %s detector%s%s%s",
                event.kind,
                event.agent,
                event.detector,
                measured(event.detector, event.value, event.threshold),
                f": {event.reason}" if event.reason else "",
                f"; undo: {event.undo}" if event.undo else "",
            )
            if event.kind == "disable" and event.automatic and latch:
                self.directory.disable_locally(event.agent, _reason(event), TRUST_ACTOR)
                self._spawn(self._latch(event))
            if event.kind in ("throttle", "disable") or event.severity in ("high", "critical"):
                self._spawn(self._alert(event))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _latch(self, event: TrustEvent) -> None:
        try:
            await asyncio.to_thread(
                self.store.set_status,
                event.agent,
                "disabled",
                actor=TRUST_ACTOR,
                reason=_reason(event),
                kind="trust_disable",
                detail=event.as_dict(),
            )
        except Exception:
            log.exception("could not persist the trust disable of %s", event.agent)

    async def _share(self, event: TrustEvent) -> None:
        """Tell the other gateways on this store: they contain the agent too (within the
        change feed's second; the store poll is the backstop)."""
        try:
            await asyncio.to_thread(
                creds.add_override,
                self.store,
                event.agent,
                "contain",
                actor=self._peer_actor,
                reason=_reason(event),
                tier=event.detector,  # the detector that fired, for the peers' evidence
                audited=False,
            )
            if self.announce is not None:
                await asyncio.to_thread(self.announce, "trust")
        except Exception:
            log.exception("could not share the containment of %s", event.agent)

    async def _revoke(self, key_id: str, agent: str) -> None:
        try:
            await asyncio.to_thread(
                creds.revoke_key,
                self.store,
                key_id,
                actor=TRUST_ACTOR,
                reason="repeated identity mismatches on this credential",
            )
        except Exception:
            log.exception("could not revoke credential %s of %s", key_id, agent)

    async def _alert(self, event: TrustEvent) -> None:
        url = self.webhook_for(event.agent) if self.webhook_for is not None else None
        if not url or self.session is None:
            return
        payload = {"event": f"trust_{event.kind}", **event.as_dict()}
        try:
            async with asyncio.timeout(5):
                async with self.session.post(url, json=payload) as resp:
                    await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("trust webhook %s failed: %s", url, exc)


def _reason(event: TrustEvent) -> str:
    return event.reason or f"trust: {event.detector} {event.kind}"


def _event_row(event: TrustEvent, actor: str) -> dict[str, Any]:
    return {
        "kind": "trust",
        "request_id": "evt_" + secrets.token_hex(12),
        "ts_us": int(event.at * 1_000_000),
        "agent": event.agent,
        "outcome": "event",
        "rule_id": f"{event.kind}:{event.detector}",
        "actor": actor if not event.automatic else TRUST_ACTOR,
        "reason": _reason(event),
        "message": f"tier {event.tier_before} -> {event.tier_after}",
        "detail": json.dumps(event.as_dict(), sort_keys=True, default=str),
    }

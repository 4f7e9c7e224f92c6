"""SIGHUP: re-read agentctl.yaml and the store's policies into a running gateway.

Nothing is restarted and no connection is dropped: requests in flight finish with the
objects they started with (their route, pool slot and pricer), new requests see the
new settings. What a running process cannot change in place is kept and named in a
warning: the listening address, the database, the counters backend, the journal,
tracing, metrics and trust wiring (`RESTART_ONLY`). A config that no longer loads
changes nothing: the error is logged and the gateway keeps its current settings.

Reloaded: `limits` (header and connection limits for new connections), upstreams,
pools and routing (pool health starts fresh when they change), pricing, identity
mode and purposes, gateway key, admin token and admin access, trusted proxies,
`audit.on_journal_failure`, `policy_poll_ms`; then the active policy version and the
agent registry are read from the store at once, without waiting for the poll.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agentctl.config import Settings
from agentctl.gateway.pools import Pools
from agentctl.gateway.proxies import TrustedProxies
from agentctl.gateway.routing import Router
from agentctl.gateway.runtime import Gateway
from agentctl.pricing import Pricer

log = logging.getLogger("agentctl.gateway")

RESTART_ONLY = (
    "home",
    "host",
    "port",
    "database",
    "counters",
    "counters_options",
    "tracing",
    "metrics",
    "trust",
)


def merge(old: Settings, new: Settings) -> tuple[Settings, list[str]]:
    """What a running process takes from `new`: everything but `RESTART_ONLY` (and the
    journal's wiring). Returns the settings and the changed names it had to keep."""
    kept = [name for name in RESTART_ONLY if getattr(new, name) != getattr(old, name)]
    if new.audit.journal != old.audit.journal or (
        new.audit.flush_interval_ms != old.audit.flush_interval_ms
    ):
        kept.append("audit.journal/flush_interval_ms")
    update = {name: getattr(old, name) for name in RESTART_ONLY}
    update["audit"] = old.audit.model_copy(
        update={"on_journal_failure": new.audit.on_journal_failure}
    )
    return new.model_copy(update=update), kept


async def reload(gw: Gateway, load: Callable[[], Settings]) -> list[str]:
    """Apply `load()` to `gw`. Returns the changed settings that need a restart."""
    old = gw.settings
    settings, kept = merge(old, load())
    if (settings.upstreams, settings.pools, settings.routing) != (
        old.upstreams,
        old.pools,
        old.routing,
    ):
        gw.router = Router(settings.upstreams, settings.pools, settings.routing)
        gw.pools = Pools(settings.upstreams, settings.routing.health)
    gw.secrets = {u.name: settings.upstream_secret(u) for u in settings.upstreams}
    if settings.pricing != old.pricing:
        gw.pricer = gw.governance.pricer = Pricer(dict(settings.pricing.overrides))
    directory = gw.directory
    directory.mode = settings.identity.mode
    directory.purposes = frozenset(settings.identity.purposes)
    directory.gateway_key = settings.gateway_key
    directory._parsed.clear()  # parsed under the old purposes
    gw.proxies = TrustedProxies(settings.trusted_proxies)
    gw.limits = settings.limits
    gw.settings = gw.governance.settings = settings
    await gw.governance.reload()
    gw.state_version = -1  # read the registry now, not at the next poll
    await gw.refresh()
    if kept:
        log.warning("reloaded config; these settings need a restart to change: %s", ", ".join(kept))
    else:
        log.info("reloaded config and policies")
    return kept

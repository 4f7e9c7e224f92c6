"""Effective policy: most specific wins, provenance, deny accumulation, unverified, cache."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from agentctl.identity import Identity
from agentctl.policy.loader import load_text
from agentctl.policy.resolve import effective

POLICY = load_text(
    """
apiVersion: agentctl/v1
aliases: {smart: gpt-4o}
defaults:
  timezone: Europe/Berlin
  lane: standard
  models: {deny: [o1-pro]}
  budgets:
    day: {usd: "10", tokens: 1000}
  rate: {rpm: 60}
purposes:
  production:
    lane: priority
    budgets:
      day: {usd: "100"}
owners:
  team-ml:
    timezone: America/New_York
    models: {deny: [smart]}
    rate: {rpm: 600}
    team_budgets:
      day: {usd: "150"}
agents:
  prod-bot:
    budgets:
      day: {usd: "50"}
    models: {allow: ["gpt-4o*"], deny: [gpt-4o-audio*]}
unverified:
  lane: batch
  rate: {rpm: 5}
  pool_budgets:
    day: {usd: "3"}
""",
    "p.yaml",
)


def who(
    name: str = "prod-bot",
    owner: str = "team-ml",
    purpose: str = "production",
    verification: str = "token",
) -> Identity:
    return Identity(name, owner, purpose, verification=verification)


@pytest.mark.parametrize(
    ("identity", "path", "value", "scope"),
    [
        (who(), "budgets.day.usd", "50", "agents.prod-bot"),
        (who(), "budgets.day.tokens", 1000, "defaults"),
        (who(), "lane", "priority", "purposes.production"),
        (who(), "rate.rpm", 600, "owners.team-ml"),
        (who(), "timezone", "America/New_York", "owners.team-ml"),
        (who(), "models.allow", ["gpt-4o*"], "agents.prod-bot"),
        (
            who(),
            "models.deny",
            ["o1-pro", "smart", "gpt-4o-audio*"],
            "defaults+owners.team-ml+agents.prod-bot",
        ),
        (who(), "default_max_output_tokens", 4096, "builtin"),
        (who("other", "team-x", "batch"), "budgets.day.usd", "10", "defaults"),
        (who("other", "team-x", "batch"), "lane", "standard", "defaults"),
        (who("other", "team-x", "production"), "budgets.day.usd", "100", "purposes.production"),
        (who(verification="unverified"), "lane", "batch", "unverified"),
        (who(verification="unverified"), "rate.rpm", 5, "unverified"),
        (who(verification="unverified"), "budgets.day.usd", "50", "agents.prod-bot"),
        (who(), "team_budgets.day.usd", "150", "owners.team-ml"),
        (who(verification="unverified"), "pool_budgets.day.usd", "3", "unverified"),
    ],
)
def test_effective_value_and_its_scope(
    identity: Identity, path: str, value: object, scope: str
) -> None:
    rows = {p: (v, s) for p, v, s in effective(POLICY, identity).explain()}
    assert rows[path] == (value, scope)


def test_deny_from_defaults_cannot_be_dropped_and_aliases_apply() -> None:
    pol = effective(POLICY, who())
    assert pol.access.check("o1-pro") is not None
    assert pol.access.check("smart") is not None  # denied by alias (-> gpt-4o) in team-ml
    assert pol.access.check("gpt-4o-mini") is None


def test_team_and_pool_budgets_are_not_inherited_as_agent_rules() -> None:
    pol = effective(POLICY, who(verification="unverified"))
    subjects = {(r.subject, r.period): r.limits.pico for r in pol.budgets}
    assert subjects == {
        ("agent", "day"): 50 * 10**12,
        ("team", "day"): 150 * 10**12,
        ("pool", "day"): 3 * 10**12,
    }
    assert pol.team_timezone == "America/New_York" and pol.pool_timezone == "Europe/Berlin"
    assert not any(r.subject == "pool" for r in effective(POLICY, who()).budgets)
    assert pol.rules.budgets is not None and pol.rules.budgets.day is not None
    assert pol.rules.budgets.day.usd == Decimal("50")


def test_cached_per_identity_and_per_version() -> None:
    first = effective(POLICY, who())
    assert effective(POLICY, who()) is first
    assert effective(POLICY, who(verification="unverified")) is not first
    fresh = load_text("apiVersion: agentctl/v1\n")
    assert effective(fresh, who()).lane == "standard"


def test_empty_policy_has_builtin_defaults() -> None:
    pol = effective(load_text("apiVersion: agentctl/v1\n"), who())
    assert (pol.lane, pol.timezone, pol.default_max_output_tokens) == ("standard", "UTC", 4096)
    assert pol.budgets == () and pol.access.check("anything") is None


def test_policy_changes_per_agent_for_a_dry_run() -> None:
    from agentctl.policy.diff import Change, policy_changes

    old = load_text("apiVersion: agentctl/v1\ndefaults:\n  rate: {rpm: 60}\n  lane: batch\n")
    new = load_text(
        "apiVersion: agentctl/v1\ndefaults:\n  rate: {rpm: 60}\n"
        "agents:\n  a: {lane: batch}\n  b: {rate: {rpm: 10}}\n"
    )
    got = policy_changes(old, new, [who("a"), who("b"), who("c")])
    assert got["a"] == [Change("lane", "batch", "batch", "defaults", "agents.a")]
    assert Change("rate.rpm", 60, 10, "defaults", "agents.b") in got["b"]
    assert Change("lane", "batch", "standard", "defaults", "builtin") in got["c"]


def test_agents_without_their_own_scope_share_one_resolution() -> None:
    from dataclasses import replace

    from agentctl.policy.resolve import _resolve

    policy = POLICY
    for identity in (who("bot-1"), who("bot-2"), who("bot-3", verification="unverified")):
        got = effective(policy, identity)
        assert got.name == identity.name
        assert got == replace(_resolve(policy, identity), name=identity.name)
        assert got.explain() == _resolve(policy, identity).explain()
    assert effective(policy, who("bot-1")).rules is effective(policy, who("bot-2")).rules
    assert effective(policy, who("prod-bot")).source("budgets.day.usd") == "agents.prod-bot"


def test_policy_changes_by_class_equal_the_changes_agent_by_agent() -> None:
    from agentctl.policy.diff import _compare, policy_changes

    old = load_text(
        "apiVersion: agentctl/v1\ndefaults:\n  rate: {rpm: 60}\nagents:\n  a1: {lane: batch}\n"
    )
    new = POLICY
    identities = [
        who(
            f"a{i}",
            owner=f"team-{i % 3}",
            purpose=("production", "batch")[i % 2],
            verification=("token", "unverified")[i % 5 == 0],
        )
        for i in range(40)
    ] + [who("prod-bot")]

    def explained(policy: Any, identity: Identity) -> dict[str, Any]:
        return {p: (v, s) for p, v, s in effective(policy, identity).explain()}

    expected = {}
    for identity in identities:
        changes = _compare(explained(old, identity), explained(new, identity))
        if changes:
            expected[identity.name] = changes
    assert policy_changes(old, new, identities) == expected
    assert "a1" in expected and "prod-bot" in expected

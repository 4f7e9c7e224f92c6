"""What a new policy version changes for each agent (`agentctl policy apply --dry-run`).

Compares the effective policies, value by value, of the identities the caller names
(typically every registered agent); a value that moved to another scope without
changing is reported too, because provenance is part of what an operator reviews.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agentctl.identity import Identity
from agentctl.policy.loader import PolicySet
from agentctl.policy.resolve import effective


@dataclass(frozen=True, slots=True)
class Change:
    path: str
    before: Any  # None when the value was not set
    after: Any  # None when the value is no longer set
    scope_before: str | None
    scope_after: str | None


def policy_changes(
    old: PolicySet, new: PolicySet, identities: Iterable[Identity]
) -> dict[str, list[Change]]:
    """Agent name -> its changes (agents with no change are left out).

    An agent named in no `agents` scope of a document resolves in it exactly like every
    other such agent with its owner, purpose and verification, so each side is resolved
    once per such class, not once per agent (10,000 agents share a few dozen classes)."""
    sides: tuple[tuple[PolicySet, dict[Any, dict[str, Any]]], ...] = ((old, {}), (new, {}))
    compared: dict[tuple[Any, Any], list[Change]] = {}
    out: dict[str, list[Change]] = {}
    for identity in identities:
        keys = tuple(_view_key(policy, seen, identity) for policy, seen in sides)
        changes = compared.get(keys)
        if changes is None:
            changes = compared[keys] = _compare(sides[0][1][keys[0]], sides[1][1][keys[1]])
        if changes:
            out[identity.name] = changes
    return out


def _view_key(policy: PolicySet, seen: dict[Any, dict[str, Any]], identity: Identity) -> Any:
    """The class of `identity` in `policy`, with its explained values cached in `seen`."""
    named = identity.name in policy.document.agents
    key = (identity.name if named else "", identity.owner, identity.purpose, identity.verification)
    if key not in seen:
        seen[key] = {p: (v, s) for p, v, s in effective(policy, identity).explain()}
    return key


def _compare(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    changes = []
    for path in sorted(before.keys() | after.keys()):
        b = before.get(path, (None, None))
        a = after.get(path, (None, None))
        if b != a:
            changes.append(Change(path, b[0], a[0], b[1], a[1]))
    return changes

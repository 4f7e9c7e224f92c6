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
    """Agent name -> its changes (agents with no change are left out)."""
    out: dict[str, list[Change]] = {}
    for identity in identities:
        before = {p: (v, s) for p, v, s in effective(old, identity).explain()}
        after = {p: (v, s) for p, v, s in effective(new, identity).explain()}
        changes = []
        for path in sorted(before.keys() | after.keys()):
            b = before.get(path, (None, None))
            a = after.get(path, (None, None))
            if b != a:
                changes.append(Change(path, b[0], a[0], b[1], a[1]))
        if changes:
            out[identity.name] = changes
    return out

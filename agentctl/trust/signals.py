"""What a detector hands the engine: a `Signal` with its class of evidence.

Levels decide the action (the engine maps them, see `actions.py`):
`weak` alerts; `statistical` throttles, or only alerts during learning mode;
`loop` throttles even in learning mode; `hard` disables; `medium` (creep left
unacknowledged for a week) demotes trusted agents. Detectors never act on their own:
they only say what they saw, with the number and the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WEAK = "weak"
STATISTICAL = "statistical"
LOOP = "loop"
HARD = "hard"
MEDIUM = "medium"  # cost creep left unacknowledged: medium event, trusted -> standard


@dataclass(slots=True)
class Signal:
    detector: str
    level: str
    value: float
    threshold: float
    since: float  # when the condition began; persistence is measured from here
    evidence: dict[str, Any] = field(default_factory=dict)


def figure(detector: str, value: float | None) -> str:
    """A detector's value or threshold in its unit: dollars for the breaker (it compares
    pico-dollars), dollars an hour for the cost rate (pico-dollars a second), requests a
    second for the request rate, else 4 significant digits."""
    if value is None:
        return "-"
    if detector == "breaker":
        return f"${value / 1e12:,.4g}"
    if detector == "cost_rate":
        return f"${value * 3600 / 1e12:,.4g}/h"
    if detector == "request_rate":
        return f"{value:.4g}/s"
    return f"{value:.4g}"


def measured(detector: str, value: float | None, threshold: float | None) -> str:
    """' (value X vs threshold Y)' for a detector's event; '' for an operator's or a
    pin's (they carry no measurement: 0 and 0)."""
    if not value and not threshold:
        return ""
    return f" (value {figure(detector, value)} vs threshold {figure(detector, threshold)})"

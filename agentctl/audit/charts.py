"""Inline SVG charts for the HTML report: no script, no external file, readable printed.

Money is converted to float only here, for geometry; every figure printed next to a
chart comes from the exact decimal strings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from html import escape

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
)
OTHER = "#bcbd22"


def money(value: Decimal) -> str:
    """Display rounding for axes and labels (tables show exact values)."""
    if value == 0:
        return "$0"
    if value >= 100:
        return f"${value:,.0f}"
    if value >= 1:
        return f"${value:,.2f}"
    return f"${value:.4f}".rstrip("0").rstrip(".")


def stacked_days(
    days: Sequence[str],
    series: Mapping[str, Mapping[str, Decimal]],
    colors: Mapping[str, str],
    *,
    width: int = 860,
    height: int = 260,
) -> str:
    """One bar per day, stacked by agent (series: agent -> day -> cost)."""
    left, bottom, top = 70, 40, 12
    plot_w, plot_h = width - left - 10, height - bottom - top
    totals = [sum((s.get(d, Decimal(0)) for s in series.values()), Decimal(0)) for d in days]
    peak = max(totals, default=Decimal(0)) or Decimal(1)
    slot = plot_w / max(len(days), 1)
    bar = max(slot * 0.8, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="Cost per day, stacked by agent">'
    ]
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">'
            f"{escape(money(peak * Decimal(str(frac))))}</text>"
        )
    step = max(1, len(days) // 12)
    for i, day in enumerate(days):
        x = left + i * slot + (slot - bar) / 2
        y = top + plot_h
        for agent, costs in series.items():
            cost = costs.get(day, Decimal(0))
            if not cost:
                continue
            h = float(cost / peak) * plot_h
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{max(h, 0.5):.1f}" '
                f'fill="{colors[agent]}"><title>{escape(agent)} {day}: '
                f"{escape(money(cost))}</title></rect>"
            )
        if i % step == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{top + plot_h + 16}" class="axis" '
                f'text-anchor="middle">{escape(day[5:])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def sparkline(
    days: Sequence[str], costs: Mapping[str, Decimal], color: str, *, width: int = 160
) -> str:
    """A tiny bar chart of one agent's cost per day."""
    height = 28
    peak = max(costs.values(), default=Decimal(0)) or Decimal(1)
    slot = width / max(len(days), 1)
    bars = []
    for i, day in enumerate(days):
        cost = costs.get(day, Decimal(0))
        if cost:
            h = max(float(cost / peak) * (height - 2), 1.0)
            bars.append(
                f'<rect x="{i * slot:.1f}" y="{height - h:.1f}" width="{max(slot - 1, 1):.1f}" '
                f'height="{h:.1f}" fill="{color}">'
                f"<title>{day}: {escape(money(cost))}</title></rect>"
            )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="spark" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="cost per day">{"".join(bars)}</svg>'
    )

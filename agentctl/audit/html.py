"""The compliance report as one self-contained HTML file (inline CSS and SVG, no script).

Written for a reader who has never seen agentctl: every section says what it shows,
terms are explained where they appear, tables carry exact figures and charts the
shape. It opens offline and prints.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from html import escape
from typing import Any

from agentctl import __version__
from agentctl.audit import charts
from agentctl.audit.compliance import Compliance, cost, share
from agentctl.audit.periods import to_datetime

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d232a;
max-width:1000px;margin:2rem auto;padding:0 1rem}
h1{font-size:1.6rem;margin:0 0 .3rem}h2{margin-top:2.2rem;border-bottom:1px solid #d8dde3;
padding-bottom:.2rem}h3{margin-top:1.4rem}.muted,.note{color:#59636e}.note{font-size:.9rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{padding:.3rem .5rem;
border-bottom:1px solid #e6e9ed;text-align:left;vertical-align:top}th{background:#f4f6f8}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}.card{border:1px solid #d8dde3;border-radius:6px;
padding:.6rem .9rem;min-width:130px}.card b{display:block;font-size:1.35rem}
.legend span{display:inline-block;margin-right:1rem}.legend i{display:inline-block;width:.8rem;
height:.8rem;margin-right:.3rem;vertical-align:-1px}svg .grid{stroke:#e6e9ed}
svg .axis{font-size:11px;fill:#59636e}code{background:#f4f6f8;padding:0 .25rem}
@media print{body{margin:0}h2{break-after:avoid}}
"""


def _when(us: int, q: Compliance) -> str:
    return to_datetime(us, q.query.tz).strftime("%Y-%m-%d %H:%M %Z")


def _table(head: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Iterable[int] = ()) -> str:
    nums = set(numeric)
    th = "".join(
        f'<th class="num">{escape(h)}</th>' if i in nums else f"<th>{escape(h)}</th>"
        for i, h in enumerate(head)
    )
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            text = value if isinstance(value, _Raw) else escape("" if value is None else str(value))
            cells.append(f'<td class="num">{text}</td>' if i in nums else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(head)}" class="muted">none in this period</td></tr>')
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class _Raw(str):
    """Markup that `_table` must not escape (our own SVG)."""


def _period(c: Compliance) -> str:
    q = c.query
    start = _when(q.since_us, c) if q.since_us is not None else "the first record"
    end = _when(q.until_us, c) if q.until_us is not None else _when(c.generated_us, c)
    return f"{start} to {end} (times in {q.tz.key})"


def _totals(c: Compliance) -> str:
    t = c.totals
    cards = [
        ("Cost (USD)", charts.money(Decimal(t["cost_usd"])), f"exact: {t['cost_usd']}"),
        ("Requests", f"{t['requests']:,}", "every call through the gateway"),
        ("Denied", f"{t['denied']:,}", "refused before reaching the provider"),
        (
            "Errors",
            f"{t['errors']:,}",
            "failed upstream or in the gateway (4xx/5xx, timeouts, overload)",
        ),
        ("Tokens in", f"{t['prompt_tokens']:,}", f"{t['cached_tokens']:,} from cache"),
        ("Tokens out", f"{t['completion_tokens']:,}", ""),
        ("Agents", f"{len([a for a in c.agents if a['agent']])}", "with at least one request"),
    ]
    html = "".join(
        f'<div class="card"><span class="muted">{escape(k)}</span><b>{escape(v)}</b>'
        f'<span class="note">{escape(n)}</span></div>'
        for k, v, n in cards
    )
    notes = []
    if t["estimated"]:
        notes.append(
            f"{t['estimated']:,} requests have estimated usage (the provider reported none, "
            "the client disconnected, or the gateway stopped mid-request)."
        )
    if t["unpriced"]:
        notes.append(f"{t['unpriced']:,} requests used a model without a known price (cost 0).")
    extra = "".join(f'<p class="note">{escape(n)}</p>' for n in notes)
    return f'<section id="totals"><h2>Totals</h2><div class="cards">{html}</div>{extra}</section>'


def _colors(c: Compliance) -> dict[str, str]:
    ranked = [a["agent"] for a in c.agents]
    return {name: charts.PALETTE[i % len(charts.PALETTE)] for i, name in enumerate(ranked)}


def _cost_per_day(c: Compliance, colors: dict[str, str]) -> str:
    top = [a["agent"] for a in c.agents[:7]]
    series = {name: c.daily.get(name, {}) for name in top}
    rest: dict[str, Decimal] = {}
    for name, costs in c.daily.items():
        if name not in top:
            for day, value in costs.items():
                rest[day] = rest.get(day, Decimal(0)) + value
    palette = {**{n: colors[n] for n in top}}
    if rest:
        series["other agents"] = rest
        palette["other agents"] = charts.OTHER
    legend = "".join(
        f'<span><i style="background:{palette[n]}"></i>{escape(n or "(no identity)")}</span>'
        for n in series
    )
    chart = charts.stacked_days(c.days, series, palette) if c.days else ""
    return (
        '<section id="cost-per-day"><h2>Cost per day, per agent</h2>'
        '<p class="note">Each bar is one day; colours are agents (largest spenders first). '
        "Hover a bar for its exact figure; each agent's own chart is in the next table.</p>"
        f'<div class="legend">{legend}</div>{chart}</section>'
    )


def _agents(c: Compliance, colors: dict[str, str]) -> str:
    whole = Decimal(c.totals["cost_usd"])
    rows = [
        (
            a["agent"] or "(no identity)",
            a["owner"],
            a["purpose"],
            a["requests"],
            a["denied"],
            a["errors"],
            a["prompt_tokens"] + a["completion_tokens"],
            a["cost_usd"],
            share(cost(a), whole),
            _Raw(charts.sparkline(c.days, c.daily.get(a["agent"], {}), colors[a["agent"]])),
        )
        for a in c.agents[:25]
    ]
    head = ("agent", "team", "purpose", "requests", "denied", "errors", "tokens", "cost USD",
            "share", "cost per day")  # fmt: skip
    more = len(c.agents) - 25
    tail = (
        f'<p class="note">{more} more agents: see <code>agentctl report</code>.</p>'
        if more > 0
        else ""
    )
    return (
        '<section id="top-agents"><h2>Top agents</h2><p class="note">Agents ranked by cost. '
        "Team is the owner the agent declared or was registered with.</p>"
        f"{_table(head, rows, numeric=range(3, 9))}{tail}</section>"
    )


def _groups(c: Compliance) -> str:
    def rows(items: list[dict[str, Any]], key: str) -> list[tuple[Any, ...]]:
        return [(r[key] or "(none)", r["requests"], r["denied"], r["cost_usd"]) for r in items]

    head = ("requests", "denied", "cost USD")
    return (
        '<section id="teams"><h2>By team and purpose</h2>'
        f"{_table(('team', *head), rows(c.teams, 'team'), numeric=(1, 2, 3))}"
        f"{_table(('purpose', *head), rows(c.purposes, 'purpose'), numeric=(1, 2, 3))}</section>"
    )


def _controls(c: Compliance) -> str:
    refusals = [
        (
            r["rule"],
            r["refusals"],
            ", ".join(
                f"{n} ({k})" for n, k in sorted(r["agents"].items(), key=lambda x: -x[1])[:5]
            ),
        )
        for r in c.refusals
    ]
    switches = [
        (_when(e["ts_us"], c), e["agent"], e["kind"], e["actor"], e["reason"], e["summary"])
        for e in c.switches
    ]
    others = [
        (_when(e["ts_us"], c), e["kind"], e["agent"], e["actor"], e["reason"], e["summary"])
        for e in c.other_events
    ]
    return (
        '<section id="controls"><h2>Controls</h2>'
        '<p class="note">What stopped or changed agents in this period. A refusal is a request '
        "the gateway answered itself, without calling the provider; the rule id names the "
        "policy or switch that refused it.</p>"
        '<h3 id="refusals">Refusals by rule</h3>'
        f"{_table(('rule', 'refusals', 'agents (refusals)'), refusals, numeric=(1,))}"
        '<h3 id="switches">Agents disabled and re-enabled</h3>'
        f"{_table(('when', 'agent', 'action', 'by', 'why', 'change'), switches)}"
        '<h3 id="events">Other operator events</h3>'
        f"{_table(('when', 'event', 'agent', 'by', 'why', 'change'), others)}</section>"
    )


def render(c: Compliance) -> str:
    colors = _colors(c)
    filters = ", ".join(f"{k} = {v}" for k, v in c.filters.items()) or "none (all agents)"
    head_id, head_hash = c.head
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>AI agent usage and controls: {escape(_period(c))}</title>"
        f"<style>{CSS}</style></head><body>"
        '<header id="summary"><h1>AI agent usage and controls</h1>'
        f"<p>Period: <b>{escape(_period(c))}</b>. Filters: {escape(filters)}.</p>"
        f'<p class="note">Generated {escape(_when(c.generated_us, c))} by agentctl '
        f"{escape(__version__)} from its tamper-evident audit log. Figures are exact and "
        "reconcile with <code>agentctl report --format json</code> run with the same options.</p>"
        "</header>"
        f"{_totals(c)}{_cost_per_day(c, colors)}{_agents(c, colors)}{_groups(c)}{_controls(c)}"
        '<footer id="integrity"><h2>Integrity</h2><p class="note">Every record is hash-chained '
        f"to the one before. At generation the chain ended at record {head_id}, hash "
        f"<code>{escape(head_hash or '-')}</code>. Run <code>agentctl audit verify</code> to "
        "prove that no record was modified, deleted or inserted since.</p></footer>"
        "</body></html>\n"
    )

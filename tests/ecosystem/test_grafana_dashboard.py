"""examples/grafana/agentctl.json is valid and built only on metrics agentctl exports,
with label names those metrics carry."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from agentctl.metrics import BudgetReading, Metrics, TierReading
from agentctl.money import PICO
from tests.test_metrics import make_call

DASHBOARD = Path(__file__).resolve().parents[2] / "examples" / "grafana" / "agentctl.json"
METRIC = re.compile(r"\bagentctl_[a-z_]+\b")
MATCHER = re.compile(r"([a-z_]+)\s*(?:=~|!~|!=|=)\s*\"")
GROUPING = re.compile(r"\bby\s*\(([^)]*)\)")


class Provider:
    def budget_readings(self) -> list[BudgetReading]:
        return [BudgetReading("bot-a", "day", PICO, PICO // 2)]

    def tier_readings(self) -> list[TierReading]:
        return [TierReading("bot-a", "standard")]

    def slot_readings(self) -> list[tuple[str, str, int]]:
        return [("openai", "batch", 3)]

    def queue_readings(self) -> list[tuple[str, str, int]]:
        return [("gpt", "batch", 2)]

    def health_readings(self) -> list[tuple[str, bool]]:
        return [("openai", True)]


def exported() -> dict[str, set[str]]:
    """Every sample name a fully fed gateway exposes, with its label names."""
    metrics = Metrics()
    metrics.budgets = metrics.tiers = metrics.upstreams = Provider()
    metrics.observe(make_call())
    metrics.observe(make_call(status=403, outcome="refused", rule="agent_disabled"))
    body, _ = metrics.exposition(None)
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict):
            exprs.append(query["query"])
    return exprs


def test_dashboard_is_valid_json_with_unique_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all({"x", "y", "w", "h"} <= set(p["gridPos"]) for p in dashboard["panels"])
    assert all(p["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"])
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for must in ("cost per agent", "requests per agent", "refusals by rule", "p99"):
        assert must in titles


def test_every_query_uses_exported_metrics_and_labels() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    names = exported()
    for expr in queries(dashboard):
        used = METRIC.findall(expr)
        assert used, f"no agentctl metric in {expr!r}"
        missing = [m for m in used if m not in names]
        assert not missing, f"{expr!r} uses {missing}, which agentctl does not export"
        labels = set().union(*(names[m] for m in used))
        for label in MATCHER.findall(expr) + [
            g.strip() for group in GROUPING.findall(expr) for g in group.split(",")
        ]:
            assert label in labels, f"{expr!r}: no label {label!r} on {used}"

"""The HTML compliance report: one self-contained file with every section, parsed."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentctl.cli import app
from agentctl.store.sql import Store
from tests.cli.test_report_periods import BERLIN, records

runner = CliRunner()
SECTIONS = ("summary", "totals", "cost-per-day", "top-agents", "teams", "controls", "integrity")


class Page(HTMLParser):
    """Collects ids, tags, external references and the text of each table."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.tags: dict[str, int] = {}
        self.external: list[str] = []
        self.tables: list[list[list[str]]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for name, value in attrs:
            if name == "id" and value:
                self.ids.append(value)
            if name in ("src", "href") or (value and "url(" in value):
                self.external.append(f"{name}={value}")
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture
def page(tmp_path: Path) -> tuple[Path, Page, str]:
    url = f"sqlite:///{tmp_path / 'html.db'}"
    store = Store(url)
    store.migrate()
    for name, team in (("bot-a", "team-ml"), ("bot-b", "team-ml"), ("bot-c", "team-ops")):
        store.register_agent(name, team, "production", actor="alice", reason="onboarding")
    store.append_records(records(BERLIN, "b"))
    store.set_status("bot-a", "disabled", actor="bob", reason="runaway loop <script>")
    store.set_status("bot-a", "active", actor="carol", reason="loop fixed")
    store.close()
    target = tmp_path / "r.html"
    args = ["report", "--db", url, "--team", "team-ml", "--tz", "Europe/Berlin"]
    result = runner.invoke(app, [*args, "--format", "html", "--output", str(target)])
    assert result.exit_code == 0, result.output
    parsed = Page()
    parsed.feed(target.read_text(encoding="utf-8"))
    totals = runner.invoke(app, [*args, "--format", "json"]).stdout
    return target, parsed, totals


def test_sections_and_self_containment(page: tuple[Path, Page, str]) -> None:
    target, parsed, _ = page
    html = target.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert [i for i in parsed.ids if i in SECTIONS] == list(SECTIONS)
    assert {"refusals", "switches", "events"} <= set(parsed.ids)
    assert parsed.tags.get("script", 0) == 0 and parsed.external == []
    assert parsed.tags["svg"] >= 2 and parsed.tags["rect"] >= 3 and parsed.tags["style"] == 1
    assert "<script>" not in html  # operator text is escaped


def test_figures_match_the_json_report(page: tuple[Path, Page, str]) -> None:
    _, parsed, raw = page
    data = json.loads(raw)
    text = " ".join(parsed.text)
    assert f"exact: {data['totals']['cost_usd']}" in text
    agents = next(t for t in parsed.tables if t[0][:2] == ["agent", "team"])
    assert [row[0] for row in agents[1:]] == [r["agent"] for r in data["rows"]]
    assert {row[0] for row in agents[1:]} == {"bot-a", "bot-b"}  # --team team-ml
    assert [row[7] for row in agents[1:]] == [r["cost_usd"] for r in data["rows"]]


def test_controls_show_refusals_and_who_switched_what(page: tuple[Path, Page, str]) -> None:
    _, parsed, _ = page
    refusals = next(t for t in parsed.tables if t[0][0] == "rule")
    assert refusals[1][:2] == ["daily-budget-exceeded", "1"] and "bot-b (1)" in refusals[1][2]
    switches = next(t for t in parsed.tables if t[0][:3] == ["when", "agent", "action"])
    actions = [(r[1], r[2], r[3], r[4]) for r in switches[1:]]
    assert actions == [
        ("bot-a", "disable", "bob", "runaway loop <script>"),
        ("bot-a", "enable", "carol", "loop fixed"),
    ]
    assert "status active -> disabled" in switches[1][5]
    events = next(t for t in parsed.tables if t[0][:2] == ["when", "event"])
    assert {r[1] for r in events[1:]} == {"register"} and len(events) == 3


def test_opens_in_a_headless_browser(page: tuple[Path, Page, str]) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium on this machine")
    target, _, _ = page
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", target.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert 'id="controls"' in dom and "daily-budget-exceeded" in dom

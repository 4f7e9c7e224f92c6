"""Redaction of prompts and completions before anything stores them (opt-in).

Prompts and completions are not stored by default. When an operator opts in, text
goes through a `Redactor` first. Pure functions of text and settings: no config, no
I/O, so the gateway, an export or a test all get the same answer.

Built-in detectors, each replaced by `[REDACTED:<kind>]`:
- `email`: addresses like a.b+tag@example.co.uk;
- `api_key`: provider and platform credentials by their documented prefixes
  (OpenAI `sk-`, Anthropic `sk-ant-`, agentctl `agk_`, AWS `AKIA`/`ASIA`, GitHub
  `ghp_`/`github_pat_`, Slack `xox?-`, Google `AIza`, Stripe `sk_live_`) and any
  `Bearer <token>`;
- `card`: 13-19 digit numbers (spaces or dashes allowed) that pass the Luhn check, so
  order numbers and timestamps survive.
Custom patterns are regular expressions given by the operator (kind `custom`, or a
name: `{"name": "employee_id", "pattern": "E\\d{6}"}`); an invalid one is refused
when the `Redactor` is built, never at request time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
API_KEY = re.compile(
    r"\b(?:sk-ant-[A-Za-z0-9_-]{16,}|sk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{16,}"
    r"|agk_[0-9a-f]{16}_[A-Za-z0-9_-]{16,}|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}"
    r"|AIza[0-9A-Za-z_-]{35}|[rs]k_live_[0-9A-Za-z]{16,})"
    r"|(?<=Bearer )[A-Za-z0-9._~+/=-]{16,}"
)
CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
BUILT_IN = ("email", "api_key", "card")


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


@dataclass(frozen=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]


class RedactionError(ValueError):
    pass


class Redactor:
    def __init__(
        self,
        *,
        detect: Iterable[str] = BUILT_IN,
        custom: Iterable[str | Mapping[str, str]] = (),
        mask: str = "[REDACTED:{kind}]",
    ) -> None:
        kinds = list(detect)
        unknown = [k for k in kinds if k not in BUILT_IN]
        if unknown:
            raise RedactionError(f"unknown detector(s) {unknown}; choose from {list(BUILT_IN)}")
        self.mask = mask
        self.card = "card" in kinds
        self.rules: list[Rule] = []
        if "api_key" in kinds:
            self.rules.append(Rule("api_key", API_KEY))
        if "email" in kinds:
            self.rules.append(Rule("email", EMAIL))
        for item in custom:
            name, text = (
                ("custom", item) if isinstance(item, str) else (item["name"], item["pattern"])
            )
            try:
                self.rules.append(Rule(name, re.compile(text)))
            except re.error as exc:
                raise RedactionError(
                    f"custom redaction pattern {text!r} is invalid: {exc}"
                ) from None

    def redact(self, text: str) -> str:
        for rule in self.rules:
            text = rule.pattern.sub(self.mask.format(kind=rule.kind), text)
        if self.card:
            text = CARD.sub(self._card, text)
        return text

    def _card(self, match: re.Match[str]) -> str:
        digits = re.sub(r"[ -]", "", match.group())
        return self.mask.format(kind="card") if luhn(digits) else match.group()

    def redact_value(self, value: Any) -> Any:
        """Strings anywhere inside JSON-like data (message lists, tool arguments)."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list):
            return [self.redact_value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.redact_value(v) for k, v in value.items()}
        return value

"""The policy document: pydantic models for `apiVersion: agentctl/v1` YAML.

Every model forbids unknown keys, so a typo fails validation with its dotted path
instead of silently granting (or removing) a limit. USD amounts are `Decimal`:
strings and integers are accepted, and so are YAML numbers, because the loader
reads every YAML float as the `Decimal` of its exact text; a Python `float` is
rejected (it is already inexact). At most 12 decimal places (one pico-dollar).

The same `Rules` block is used in every scope (`defaults`, `purposes.<p>`,
`owners.<o>`, `agents.<name>`, `unverified`); owners add `team_budgets` (the whole
team's spend, applied on top of each member's own budgets) and `unverified` adds
`pool_budgets` (all unverified traffic together, so rotating names cannot reset
a per-agent budget). Each rule block has `mode: enforce|shadow`.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

API_VERSION = "agentctl/v1"
DEFAULT_MAX_OUTPUT_TOKENS = 4096
DEFAULT_TIMEZONE = "UTC"
DEFAULT_LANE = "standard"

Lane = Literal["priority", "standard", "batch"]
LANES: tuple[str, ...] = ("priority", "standard", "batch")


class Mode(StrEnum):
    enforce = "enforce"
    shadow = "shadow"


MAX_USD = Decimal(1_000_000_000)


def _usd(value: Any) -> Decimal:
    if isinstance(value, bool | float):
        raise ValueError("write USD amounts as a string, e.g. '0.50' (floats are inexact)")
    if isinstance(value, int):
        value = Decimal(value)
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"'{value}' is not a decimal USD amount") from None
    if not isinstance(value, Decimal):
        raise ValueError("expected a USD amount such as '5' or '0.25'")
    if not value.is_finite() or value < 0:
        raise ValueError("USD amounts must be finite and not negative")
    if value > MAX_USD:  # pico-dollars must fit the counters (Redis: 64-bit integers)
        raise ValueError(f"USD amounts are at most {MAX_USD:,} (one billion dollars)")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -12:
        raise ValueError("USD amounts have at most 12 decimal places (one pico-dollar)")
    return value


USD = Annotated[
    Decimal,
    BeforeValidator(_usd),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\s*\d+(\.\d{1,12})?\s*$"},
                {"type": "number", "minimum": 0},
            ],
            "description": "USD amount, exact decimal (e.g. '0.50')",
        }
    ),
]
Count = Annotated[int, Field(ge=0, strict=True)]
Positive = Annotated[int, Field(ge=1, strict=True)]
Glob = Annotated[str, Field(min_length=1, max_length=200)]


class Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelRules(Block):
    """Globs matched on normalised names; `deny` accumulates across scopes."""

    allow: list[Glob] | None = None
    deny: list[Glob] | None = None
    mode: Mode = Mode.enforce


class RequestCaps(Block):
    max_tokens: Positive | None = Field(None, description="max output tokens per choice")
    max_input_tokens: Positive | None = None
    max_usd: USD | None = Field(None, description="max estimated worst-case cost")
    mode: Mode = Mode.enforce


class Budget(Block):
    requests: Count | None = None
    tokens: Count | None = None
    usd: USD | None = None
    mode: Mode = Mode.enforce


class Budgets(Block):
    hour: Budget | None = None
    day: Budget | None = None
    month: Budget | None = None


class RateLimits(Block):
    rpm: Positive | None = None
    tpm: Positive | None = None
    burst: Positive | None = Field(None, description="requests at once; default rpm")
    burst_tokens: Positive | None = Field(None, description="tokens at once; default tpm")
    mode: Mode = Mode.enforce


class Concurrency(Block):
    max: Positive
    mode: Mode = Mode.enforce


class Breaker(Block):
    usd_per_hour: USD | None = None
    usd_per_day: USD | None = None
    mode: Mode = Mode.enforce


class Alerts(Block):
    webhook: str | None = None

    @field_validator("webhook")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("webhook must be an http:// or https:// URL")
        return value


class Rules(Block):
    timezone: str | None = Field(None, description="IANA zone for calendar windows; UTC")
    lane: Lane | None = None
    default_max_output_tokens: Positive | None = Field(
        None,
        description="output tokens assumed per choice when the client sends no max_tokens "
        f"(default {DEFAULT_MAX_OUTPUT_TOKENS}, capped by request.max_tokens)",
    )
    models: ModelRules | None = None
    request: RequestCaps | None = None
    budgets: Budgets | None = None
    rate: RateLimits | None = None
    concurrency: Concurrency | None = None
    breaker: Breaker | None = None
    alerts: Alerts | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA timezone '{value}'") from None
        return value


class OwnerRules(Rules):
    team_budgets: Budgets | None = None


class UnverifiedRules(Rules):
    pool_budgets: Budgets | None = None


class PolicyDocument(Block):
    api_version: Literal["agentctl/v1"] = Field(alias="apiVersion")
    description: str | None = None
    aliases: dict[str, Glob] = Field(default_factory=dict)
    defaults: Rules | None = None
    purposes: dict[str, Rules] = Field(default_factory=dict)
    owners: dict[str, OwnerRules] = Field(default_factory=dict)
    agents: dict[str, Rules] = Field(default_factory=dict)
    unverified: UnverifiedRules | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def policy_json_schema() -> dict[str, Any]:
    """JSON Schema for editors (e.g. yaml-language-server's `# yaml-language-server: $schema=`)."""
    schema = PolicyDocument.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "agentctl policy (apiVersion agentctl/v1)"
    return schema


def field_names() -> set[str]:
    """Every key the vocabulary knows, for 'did you mean' hints."""
    models: tuple[type[BaseModel], ...] = (
        PolicyDocument,
        OwnerRules,
        UnverifiedRules,
        ModelRules,
        RequestCaps,
        Budget,
        Budgets,
        RateLimits,
        Concurrency,
        Breaker,
        Alerts,
    )
    return {info.alias or name for m in models for name, info in m.model_fields.items()}

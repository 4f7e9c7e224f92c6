"""How the simulator behaves: the global `SimulatorConfig` and the per-request `Behaviour`.

Every knob of `Behaviour` can be set in two places: on the shared, mutable
`SimulatorConfig` (tests change it while the server runs), or for one request with an
`x-sim-<field-with-dashes>` header (`latency_ms` -> `x-sim-latency-ms`). The header wins.
The header names are derived from the field names, so adding a field adds its header.

An unknown `x-sim-*` header or an unparsable value is a 400, not a silent default:
a typo in a test must fail loudly rather than test nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

HEADER_PREFIX = "x-sim-"


class InvalidRequest(ValueError):
    """A request the simulator refuses with a 400, in the caller's wire format."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(slots=True)
class Behaviour:
    """Everything that may differ between two requests. See the package docstring."""

    latency_ms: float = 0.0
    chunk_delay_ms: float = 0.0
    status: int | None = None
    fail_first: int = 0
    key: str = ""
    retry_after_ms: int = 100
    hang: bool = False
    reset_after: int | None = None
    malformed: bool = False
    omit_usage: bool = False
    gzip: bool = False
    response_bytes: int = 0
    completion_tokens: int = 16
    cached_tokens: int = 0
    cached_fraction: float = 0.0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 8
    reasoning_models: tuple[str, ...] = ("o*",)

    @classmethod
    def resolve(cls, config: Behaviour, headers: Mapping[str, str] | None = None) -> Behaviour:
        """A snapshot of `config` with the request's `x-sim-*` headers applied."""
        snapshot = cls(*[getattr(config, name) for name in _FIELD_NAMES])
        if headers:
            for name, raw in headers.items():
                lowered = name.lower()
                if lowered.startswith(HEADER_PREFIX):
                    _apply(snapshot, lowered, raw)
        return snapshot

    @property
    def failing_status(self) -> int | None:
        if self.status is None and self.fail_first > 0:
            return 503
        return self.status


@dataclass(slots=True)
class SimulatorConfig(Behaviour):
    """Global settings: the `Behaviour` defaults plus what only makes sense server-wide.

    `max_concurrency` caps requests served at once (the rest wait in FIFO order);
    `api_key`, when set, makes every API request without `Authorization: Bearer <key>` or
    `x-api-key: <key>` a 401; `record_requests` keeps a copy of every request in memory.
    """

    models: list[str] = field(
        default_factory=lambda: [
            "gpt-4o",
            "gpt-4o-mini",
            "o3-mini",
            "text-embedding-3-small",
            "gpt-3.5-turbo-instruct",
            "claude-sonnet-4-5",
            "claude-haiku-4-5",
        ]
    )
    embedding_dimensions: int = 8
    max_concurrency: int | None = None
    api_key: str | None = None
    record_requests: bool = True


def _int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _float(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise ValueError("must not be negative")
    return value


def _fraction(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be between 0 and 1")
    return value


def _status(raw: str) -> int:
    value = int(raw)
    if not 400 <= value <= 599:
        raise ValueError("must be an HTTP error status (400-599)")
    return value


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _globs(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


_PARSERS: dict[str, Callable[[str], Any]] = {
    "latency_ms": _float,
    "chunk_delay_ms": _float,
    "status": _status,
    "fail_first": _int,
    "key": str,
    "retry_after_ms": _int,
    "hang": _bool,
    "reset_after": _int,
    "malformed": _bool,
    "omit_usage": _bool,
    "gzip": _bool,
    "response_bytes": _int,
    "completion_tokens": _int,
    "cached_tokens": _int,
    "cached_fraction": _fraction,
    "cache_write_tokens": _int,
    "reasoning_tokens": _int,
    "reasoning_models": _globs,
}
_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Behaviour))
HEADERS: dict[str, str] = {HEADER_PREFIX + name.replace("_", "-"): name for name in _FIELD_NAMES}
assert set(_PARSERS) == set(_FIELD_NAMES), "every Behaviour field needs a header parser"


def _apply(snapshot: Behaviour, header: str, raw: str) -> None:
    name = HEADERS.get(header)
    if name is None:
        known = ", ".join(sorted(HEADERS))
        raise InvalidRequest(f"unknown simulator header {header!r}; known: {known}", header)
    try:
        value = _PARSERS[name](raw.strip())
    except ValueError as exc:
        raise InvalidRequest(f"invalid {header}: {raw!r} ({exc})", header) from None
    setattr(snapshot, name, value)

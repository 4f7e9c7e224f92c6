"""Settings: flags, then `AGENTCTL_*` environment variables, then `agentctl.yaml`, then defaults.

This is the only module that reads `os.environ`. Secrets in files are references
(`{"$env": "OPENAI_API_KEY"}`), never literals: a literal secret in `agentctl.yaml`
is refused at load time, so config files can be committed and shared safely.
`Settings` is frozen and handed to `create_app`; it is never passed to workers
through the environment.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from agentctl.errors import ConfigError
from agentctl.identity import DEFAULT_PURPOSES

CONFIG_NAME = "agentctl.yaml"
ENV_PREFIX = "AGENTCTL_"


class SecretRef(BaseModel):
    """`{"$env": NAME}`: the value is read from the environment when needed."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    env: str = Field(alias="$env")

    def resolve(self) -> str | None:
        return os.environ.get(self.env) or None


def _secret(value: Any) -> Any:
    if value is None or isinstance(value, SecretRef | dict):
        return value
    raise ValueError('secrets must be references like {"$env": "OPENAI_API_KEY"}, not literals')


def _networks(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/8)"
            ) from None
    return values


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(_Model):
    connect: float = 10.0
    first_byte: float = 120.0
    idle: float = 120.0  # between stream chunks
    total: float = 900.0


LaneName = Literal["priority", "standard", "batch"]
FailureKind = Literal["connect", "timeout", "5xx", "429"]
LANE_NAMES: tuple[LaneName, ...] = ("priority", "standard", "batch")


class LaneReserve(_Model):
    """Shares of an upstream's `max_concurrency` kept from lower lanes: `priority` only
    the priority lane may use, `standard` neither lane below it (batch) may use. Slots
    reserved = floor(max_concurrency x share), so small limits reserve nothing."""

    priority: float = Field(default=0.1, ge=0, lt=1)
    standard: float = Field(default=0.15, ge=0, lt=1)

    @model_validator(mode="after")
    def _sum(self) -> LaneReserve:
        if self.priority + self.standard >= 1:
            raise ValueError("reserve.priority + reserve.standard must be below 1")
        return self


class Upstream(_Model):
    """One provider endpoint. Routing fields (docs/decisions-routing.md): `aliases` maps a
    client model name to this upstream's name for it; `lanes` it serves; at most
    `max_concurrency` requests at once (None: unlimited, never queues); `weight` shares
    load among the members of a pool (0: a backup, used when weighted members are full,
    ejected or have failed this request)."""

    name: str
    base_url: str
    api_key: SecretRef | None = None
    models: tuple[str, ...] = ("*",)
    aliases: dict[str, str] = {}
    provider: str = "openai"  # genai-prices provider id
    api: Literal["openai", "anthropic"] = "openai"
    auth: Literal["bearer", "x-api-key"] = "bearer"
    inject_stream_usage: bool = True
    timeouts: Timeouts = Timeouts()
    lanes: tuple[LaneName, ...] = LANE_NAMES
    max_concurrency: int | None = Field(default=None, ge=1)
    weight: int = Field(default=1, ge=0)
    reserve: LaneReserve = LaneReserve()

    _check_key = field_validator("api_key", mode="before")(_secret)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        if "@" in urlsplit(v).netloc:  # user:password@host is a literal secret
            raise ValueError(
                'base_url must not carry credentials; use api_key: {"$env": NAME} instead'
            )
        return v.rstrip("/")


class PoolOptions(_Model):
    """How a pool forwards: fallback before the first byte reaches the client, at most
    `max_attempts` upstreams per request, and how long a request may wait for a slot
    (`queue_timeout` seconds, then 503 `upstream-saturated`; `max_queue` waiting at most)."""

    max_attempts: int = Field(default=3, ge=1)
    fallback_on: tuple[FailureKind, ...] = ("connect", "timeout", "5xx", "429")
    queue_timeout: float = Field(default=30.0, ge=0)
    max_queue: int = Field(default=1000, ge=0)

    @field_validator("fallback_on", mode="before")
    @classmethod
    def _status_as_text(cls, value: Any) -> Any:
        """YAML reads an unquoted 429 as a number: take it as the status it names."""
        if isinstance(value, list | tuple):
            return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value


class Pool(PoolOptions):
    """An explicit pool: client model globs (and alias names) served by `upstreams`,
    named in preference order. Models no pool claims get an implicit pool of every
    upstream whose `models`/`aliases` match, with the `routing:` options; an explicit pool
    takes `routing:` for every option it does not set itself."""

    name: str
    models: tuple[str, ...]
    upstreams: tuple[str, ...] = Field(min_length=1)


class HealthSettings(_Model):
    """`failures` consecutive failures eject an upstream for `eject_seconds`, doubled
    on each ejection in a row up to `max_eject_seconds`; then one real request probes
    it (half-open). `failures: 0` never ejects."""

    failures: int = Field(default=3, ge=0)
    eject_seconds: float = Field(default=10.0, gt=0)
    max_eject_seconds: float = Field(default=300.0, gt=0)


class Routing(PoolOptions):
    """Defaults for implicit pools, upstream health, and whether trust moves lanes."""

    health: HealthSettings = HealthSettings()
    trust_lanes: bool = True


class AdminSettings(_Model):
    """The admin API (`/admin/*`). Loopback peers only unless `allow_remote` is on AND an
    admin token is configured; with a token, every call must present it."""

    enabled: bool = True
    allow_remote: bool = False


def _check_pools(upstreams: tuple[Upstream, ...], pools: tuple[Pool, ...]) -> None:
    names = [u.name for u in upstreams]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"upstream names must be unique; repeated: {dupes}")
    pool_names = [p.name for p in pools]
    if len(set(pool_names)) != len(pool_names):
        raise ValueError("pool names must be unique")
    for pool in pools:
        unknown = sorted(set(pool.upstreams) - set(names))
        if unknown:
            raise ValueError(f"pool {pool.name!r} names unknown upstream(s) {unknown}")


class IdentitySettings(_Model):
    mode: Literal["verify", "declare"] = "verify"
    purposes: tuple[str, ...] = tuple(sorted(DEFAULT_PURPOSES))
    forward_header: bool = True


class ModelPrice(_Model):
    """USD per million tokens; strings so they stay exact Decimals."""

    input_per_mtok: str
    output_per_mtok: str
    cached_input_per_mtok: str | None = None
    cache_write_per_mtok: str | None = None


class Pricing(_Model):
    unknown_model: Literal["serve", "refuse"] = "serve"
    overrides: dict[str, ModelPrice] = {}


class Limits(_Model):
    """What one client may cost the gateway (docs/security.md). The header and connection
    limits apply in the connection layer (`gateway.listener`), before the app runs."""

    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1)
    max_response_bytes: int = Field(default=256 * 1024 * 1024, ge=1)
    default_max_output_tokens: int = 4096  # reservation estimate when the client sends none
    drain_seconds: float = 30.0
    max_header_bytes: int = Field(default=8190, ge=256)  # one request line or header line
    max_headers: int = Field(default=100, ge=8)
    header_timeout_seconds: float = Field(default=30.0, gt=0)  # whole request head
    body_timeout_seconds: float = Field(default=120.0, gt=0)  # whole request body
    idle_timeout_seconds: float = Field(default=75.0, gt=0)  # keep-alive between requests
    max_connections: int = Field(default=1000, ge=1)  # beyond: 503 too_many_connections


class CountersOptions(_Model):
    """How the gateway uses a shared counters backend (Redis); ignored for `memory://`.

    `on_failure`: `closed` answers 503 `counters_unavailable` while the backend is
    unreachable; `open` serves with per-process in-memory limits until it returns."""

    on_failure: Literal["closed", "open"] = "closed"
    prefix: str = "agentctl:"  # key prefix; `?prefix=` in the URL wins
    timeout_ms: Annotated[int, Field(ge=10)] = 500  # slower than this counts as unreachable


class CountersBlock(CountersOptions):
    """`counters:` as a mapping in agentctl.yaml (a plain URL string still works)."""

    url: str = "memory://"


class AuditBodies(_Model):
    """Opt-in storage of prompts and completions in audit records (agentctl/audit/capture.py),
    redacted first: `redact` names built-in detectors (email, api_key, card), `custom`
    adds regular expressions (a string, or `{name, pattern}`)."""

    store: bool = False
    max_chars: int = Field(default=16384, ge=256)
    redact: tuple[Literal["email", "api_key", "card"], ...] = ("email", "api_key", "card")
    custom: tuple[str | dict[str, str], ...] = ()

    @field_validator("custom")
    @classmethod
    def _compiles(cls, v: tuple[str | dict[str, str], ...]) -> tuple[str | dict[str, str], ...]:
        from agentctl.audit.redaction import RedactionError, Redactor

        try:
            Redactor(detect=(), custom=v)
        except (RedactionError, KeyError, TypeError) as exc:
            raise ValueError(f"{exc}; a custom pattern is a regex or {{name, pattern}}") from None
        return v


class Audit(_Model):
    """`on_journal_failure`: when the journal cannot be written (disk full, I/O error),
    `closed` refuses new requests with 503 `audit_unavailable` until it can; `open`
    forwards them anyway (their records still reach the store, without crash safety)."""

    flush_interval_ms: int = 100
    journal: bool = True
    on_journal_failure: Literal["closed", "open"] = "closed"
    bodies: AuditBodies = AuditBodies()


class MetricsSettings(_Model):
    """`GET /metrics`. At most `max_agents` agents (and owners) and `max_models` models get
    their own label values (top spenders); the rest are counted under `_other`."""

    enabled: bool = True
    max_agents: int = Field(default=50, ge=1)
    max_models: int = Field(default=50, ge=1)


class TracingSettings(_Model):
    """OpenTelemetry spans (extra `agentctl[otel]`). `global` uses the process's own SDK
    setup (e.g. `opentelemetry-instrument`); `otlp` sends OTLP/HTTP to `endpoint` (default
    from `OTEL_EXPORTER_OTLP_*`)."""

    enabled: bool = False
    exporter: Literal["otlp", "console", "global"] = "otlp"
    endpoint: str | None = None
    service_name: str = "agentctl"


class TrustSettings(_Model):
    """Behavioural trust (docs/decisions-trust.md). `params` overrides any TrustConfig
    field, e.g. `{default_base_rps: 20, loop_count: 20}`; unknown names are refused."""

    enabled: bool = True
    params: dict[str, float] = {}

    @field_validator("params")
    @classmethod
    def _known(cls, v: dict[str, float]) -> dict[str, float]:
        from dataclasses import fields

        from agentctl.trust.config import TrustConfig

        names = {f.name for f in fields(TrustConfig)} - {"tier_multipliers"}
        unknown = sorted(set(v) - names)
        if unknown:
            raise ValueError(f"unknown trust parameter(s) {unknown}; known: {sorted(names)}")
        return v


class FileConfig(_Model):
    """The shape of agentctl.yaml."""

    host: str = "127.0.0.1"
    port: int = 8787
    database: str | None = None
    counters: str | CountersBlock = "memory://"
    gateway_key: SecretRef | None = None
    admin_token: SecretRef | None = None
    identity: IdentitySettings = IdentitySettings()
    upstreams: tuple[Upstream, ...] = ()
    pools: tuple[Pool, ...] = ()
    routing: Routing = Routing()
    admin: AdminSettings = AdminSettings()
    pricing: Pricing = Pricing()
    limits: Limits = Limits()
    audit: Audit = Audit()
    metrics: MetricsSettings = MetricsSettings()
    tracing: TracingSettings = TracingSettings()
    trust: TrustSettings = TrustSettings()
    policy_poll_ms: int = 250
    trusted_proxies: tuple[str, ...] = ()

    _check_keys = field_validator("gateway_key", "admin_token", mode="before")(_secret)

    @model_validator(mode="after")
    def _pools(self) -> FileConfig:
        _check_pools(self.upstreams, self.pools)
        # An explicit pool takes `routing:` for every option it does not set itself.
        inherited = tuple(
            pool.model_copy(
                update={
                    k: getattr(self.routing, k)
                    for k in PoolOptions.model_fields
                    if k not in pool.model_fields_set and k in self.routing.model_fields_set
                }
            )
            for pool in self.pools
        )
        object.__setattr__(self, "pools", inherited)
        return self


class Settings(_Model):
    """Everything `create_app` needs, fully resolved."""

    home: Path
    host: str = "127.0.0.1"
    port: int = 8787
    database: str
    counters: str = "memory://"  # the URL; the rest of a `counters:` block is below
    counters_options: CountersOptions = CountersOptions()
    gateway_key: str | None = None
    admin_token: str | None = None
    identity: IdentitySettings = IdentitySettings()
    upstreams: tuple[Upstream, ...] = ()
    pools: tuple[Pool, ...] = ()
    routing: Routing = Routing()
    admin: AdminSettings = AdminSettings()
    pricing: Pricing = Pricing()
    limits: Limits = Limits()
    audit: Audit = Audit()
    metrics: MetricsSettings = MetricsSettings()
    tracing: TracingSettings = TracingSettings()
    trust: TrustSettings = TrustSettings()
    policy_poll_ms: int = 250
    # Peers (addresses or CIDR networks) whose X-Forwarded-For is believed; the client
    # recorded for anyone else is the TCP peer (gateway.proxies).
    trusted_proxies: tuple[str, ...] = ()

    _check_proxies = field_validator("trusted_proxies")(_networks)

    @model_validator(mode="after")
    def _pools(self) -> Settings:
        _check_pools(self.upstreams, self.pools)
        return self

    @property
    def journal_path(self) -> Path:
        return self.home / "journal"

    def upstream_secret(self, upstream: Upstream) -> str | None:
        return upstream.api_key.resolve() if upstream.api_key else None

    def missing_keys(self) -> list[str]:
        """One warning per remote upstream whose key variable is unset: its requests would
        go out with no provider key and every one come back 401. A loopback upstream (the
        simulator, a local model server) often needs none, so it is not named."""
        out = []
        for u in self.upstreams:
            host = urlsplit(u.base_url).hostname or ""
            if u.api_key is not None and self.upstream_secret(u) is None and not is_loopback(host):
                out.append(
                    f"upstream {u.name!r}: {u.api_key.env} is not set, so requests to "
                    f"{u.base_url} go out without a provider key (expect 401s); set it, or "
                    "drop api_key for an upstream that needs none"
                )
        return out


def home_dir(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_PREFIX + "HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("agentctl", appauthor=False))


def default_database(home: Path) -> str:
    return f"sqlite:///{home / 'agentctl.db'}"


def env(name: str) -> str | None:
    """An `AGENTCTL_*` variable (the CLI's envvar options go through typer)."""
    return os.environ.get(ENV_PREFIX + name) or None


def env_var(name: str) -> str | None:
    """Any environment variable, by full name (provider keys for quick mode)."""
    return os.environ.get(name) or None


def read_file_config(path: Path | None, home: Path) -> FileConfig:
    if path is None:
        path = home / CONFIG_NAME
        if not path.exists():
            return FileConfig()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist; run `agentctl init` to write one"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {_yaml_problem(exc)}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping of settings")
    try:
        return FileConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_explain(exc)}") from exc


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's message spans several lines with a caret drawing; one line is enough."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def load_settings(
    *,
    home: str | Path | None = None,
    config: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Build Settings. `overrides` are CLI flags (None values are ignored)."""
    home_path = home_dir(home)
    file_cfg = read_file_config(config, home_path)
    data: dict[str, Any] = file_cfg.model_dump(exclude={"gateway_key", "admin_token"})
    if isinstance(file_cfg.counters, CountersBlock):
        data["counters"] = file_cfg.counters.url
        data["counters_options"] = file_cfg.counters.model_dump(exclude={"url"})
    data["gateway_key"] = file_cfg.gateway_key.resolve() if file_cfg.gateway_key else None
    data["admin_token"] = file_cfg.admin_token.resolve() if file_cfg.admin_token else None
    for key, var in (
        ("gateway_key", "GATEWAY_KEY"),
        ("admin_token", "ADMIN_TOKEN"),
        ("database", "DB"),
        ("counters", "COUNTERS"),
    ):
        value = env(var)
        if value:
            data[key] = value
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
    data["database"] = data.get("database") or default_database(home_path)
    data["home"] = home_path
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from exc


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

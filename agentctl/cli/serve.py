"""`agentctl init` and `agentctl serve`: flags become Settings; the gateway does the rest."""

from __future__ import annotations

import contextlib
import enum
import logging
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from agentctl.cli import render
from agentctl.cli.options import ConfigFile, Db
from agentctl.config import (
    CONFIG_NAME,
    SecretRef,
    Settings,
    Upstream,
    home_dir,
    load_settings,
)
from agentctl.errors import CliError
from agentctl.logs import setup_logging


class LogFormat(enum.StrEnum):
    text = "text"
    json = "json"


class LogLevel(enum.StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


def safe_url(url: str) -> str:
    """A database URL without its password, for log lines."""
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


STARTER = """\
# agentctl.yaml: gateway settings. Flags and AGENTCTL_* environment variables override it.
# Secrets are never written here: use {"$env": "VARIABLE"} references.

# Where the gateway listens. Listening beyond loopback requires gateway_key.
host: 127.0.0.1
port: 8787

# Durable store: SQLite by default (in this directory), or postgresql://user@host/db.
# database: sqlite:////path/to/agentctl.db

# Hot counters: memory:// for one process, redis://host:6379/0 for several.
counters: memory://

# Optional shared key clients may present instead of an agent token.
# gateway_key: {"$env": "AGENTCTL_GATEWAY_KEY"}

identity:
  # verify: registered agents must present their token; unregistered names are
  #         served as "unverified". declare: the header alone is accepted.
  mode: verify
  # Allowed values of purpose= in X-Agent-Identity.
  purposes: [batch, development, evaluation, production, staging, test]
  # Pass X-Agent-Identity on to the upstream unchanged.
  forward_header: true

upstreams:
  - name: openai
    base_url: https://api.openai.com/v1     # replaces /v1 of the client's path
    api_key: {"$env": "OPENAI_API_KEY"}
    models: ["*"]                            # globs of model names this upstream serves
    provider: openai                         # genai-prices provider id, for pricing
    api: openai                              # openai | anthropic
    auth: bearer                             # bearer | x-api-key
    inject_stream_usage: true                # ask for stream usage, hide it if unasked
    timeouts: {connect: 10, first_byte: 120, idle: 120, total: 900}
  # - name: anthropic
  #   base_url: https://api.anthropic.com/v1
  #   api_key: {"$env": "ANTHROPIC_API_KEY"}
  #   models: ["claude-*"]
  #   provider: anthropic
  #   api: anthropic
  #   auth: x-api-key

pricing:
  # serve: unknown models are served and recorded as "unpriced" (with a warning).
  # refuse: unknown models are refused before any upstream call.
  unknown_model: serve
  # USD per million tokens, as strings so they stay exact.
  overrides: {}
  #   my-finetune:
  #     input_per_mtok: "1.20"
  #     output_per_mtok: "4.80"
  #     cached_input_per_mtok: "0.60"

limits:
  max_body_bytes: 33554432          # 32 MiB; larger requests get 413
  default_max_output_tokens: 4096   # reservation estimate when a client sends no max_tokens
  drain_seconds: 30                 # SIGTERM waits this long for in-flight requests
  max_header_bytes: 8190            # longest request line or header line (431 beyond)
  max_headers: 100                  # header lines per request (431 beyond)
  header_timeout_seconds: 30        # a request head must arrive within this (408)
  body_timeout_seconds: 120         # a request body must arrive within this (408)
  idle_timeout_seconds: 75          # idle keep-alive connections are closed
  max_connections: 1000             # requests on connections beyond this get 503

# Reverse proxies whose X-Forwarded-For is believed (addresses or networks).
# trusted_proxies: [127.0.0.1]

audit:
  flush_interval_ms: 100            # batch audit inserts; the journal makes them crash-safe
  journal: true
  on_journal_failure: closed        # journal unwritable: closed refuses (503), open serves
"""


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("serve")(serve)


def init(
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    home: Annotated[
        Path | None, typer.Option("--home", help="Home directory (default: AGENTCTL_HOME).")
    ] = None,
) -> None:
    """Write a commented starter agentctl.yaml into the home directory."""
    directory = home_dir(home)
    path = directory / CONFIG_NAME
    if path.exists() and not force:
        raise CliError(f"{path} already exists; pass --force to overwrite it")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(STARTER, encoding="utf-8")
    except OSError as exc:
        raise CliError(
            f"cannot write {path}: {exc.strerror}; choose another --home (or AGENTCTL_HOME)"
        ) from None
    render.out(f"wrote {path}")


def serve(
    config: ConfigFile = None,
    host: Annotated[str | None, typer.Option("--host", help="Listen address [127.0.0.1].")] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Listen port [8787].", min=0, max=65535)
    ] = None,
    db: Db = None,
    counters: Annotated[
        str | None,
        typer.Option(
            "--counters",
            help="Counters URL: memory:// (one process) or redis://HOST:6379/0[?prefix=P] "
            "(shared by every gateway).",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option("--workers", help="Gateway processes on this port (N > 1 needs redis://)."),
    ] = 1,
    upstream: Annotated[
        str | None,
        typer.Option(
            "--upstream",
            help="Quick mode: one OpenAI-compatible upstream for all models, e.g. "
            "https://api.openai.com/v1.",
        ),
    ] = None,
    upstream_key_env: Annotated[
        str,
        typer.Option("--upstream-key-env", help="Environment variable holding its key."),
    ] = "OPENAI_API_KEY",
    provider: Annotated[
        str, typer.Option("--provider", help="Pricing provider id for --upstream.")
    ] = "openai",
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format", help="Log lines as text or json.", envvar="AGENTCTL_LOG_FORMAT"
        ),
    ] = LogFormat.text,
    log_level: Annotated[
        LogLevel, typer.Option("--log-level", help="Log level.", envvar="AGENTCTL_LOG_LEVEL")
    ] = LogLevel.info,
) -> None:
    """Run the gateway."""
    from agentctl.gateway import eventloop
    from agentctl.gateway.server import check_settings
    from agentctl.gateway.server import serve as run

    setup_logging(log_format.value, log_level.value)
    overrides: dict[str, object] = {
        "host": host,
        "port": port,
        "database": db,
        "counters": counters,
    }
    if upstream:
        try:
            quick = Upstream(
                name="default",
                base_url=upstream,
                api_key=SecretRef.model_validate({"$env": upstream_key_env}),
                provider=provider,
            )
        except ValidationError as exc:
            why = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            raise CliError(
                f"--upstream {upstream!r}: {why} (e.g. http://127.0.0.1:9000/v1)", exit_code=2
            ) from None
        overrides["upstreams"] = (quick,)
    settings = load_settings(config=config, overrides=overrides)
    check_settings(settings)
    for warning in settings.missing_keys():
        logging.getLogger("agentctl.gateway").warning(warning)

    def reload() -> Settings:  # SIGHUP: the same sources, read again
        fresh = load_settings(config=config, overrides=overrides)
        check_settings(fresh)
        return fresh

    def ready(url: str) -> None:
        say(f"agentctl gateway listening on {url} (database {safe_url(settings.database)})")

    def say(message: str) -> None:
        if log_format is LogFormat.json:
            logging.getLogger("agentctl.gateway").info(message)
        else:
            render.plain(message)  # no rich for one line: serve stays lighter

    if workers != 1:
        from agentctl.gateway.workers import run_workers

        def all_ready(url: str) -> None:
            say(
                f"agentctl gateway listening on {url} with {workers} workers "
                f"(database {safe_url(settings.database)}, "
                f"counters {safe_url(settings.counters)})"
            )

        raise typer.Exit(run_workers(settings, workers, on_ready=all_ready, reload=reload))
    with contextlib.suppress(KeyboardInterrupt):
        eventloop.run(run(settings, on_ready=ready, reload=reload))

"""Real PostgreSQL and Redis for contract tests: a unique database or key prefix per test,
dropped afterwards. Without the servers the tests skip with the reason, except under
CI=true, where a missing server is a failure."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

PG_ADMIN_URL = os.environ.get("AGENTCTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("AGENTCTL_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({type(exc).__name__}: {exc})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true requires it")
    pytest.skip(message)


def postgres_database() -> Iterator[str]:
    """Create a throwaway database; yield its URL; drop it."""
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        _unavailable("psycopg", exc)
        raise
    name = f"agentctl_t_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:
        _unavailable(f"PostgreSQL at {PG_ADMIN_URL}", exc)
        raise
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_prefix() -> Iterator[tuple[str, str]]:
    """Yield (redis URL, unique key prefix); delete the prefix's keys afterwards."""
    try:
        import redis
    except ImportError as exc:  # pragma: no cover
        _unavailable("redis-py", exc)
        raise
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:
        _unavailable(f"Redis at {REDIS_URL}", exc)
        raise
    prefix = f"agentctl-test-{secrets.token_hex(6)}:"
    try:
        yield REDIS_URL, prefix
    finally:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()

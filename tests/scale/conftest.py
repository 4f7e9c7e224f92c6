"""Fixtures for many-process tests: a throwaway PostgreSQL database (migrated through
`agentctl db migrate`), a unique Redis key prefix, and a private `redis-server` that a
test may stop and start again (the machine's Redis and PostgreSQL are never stopped)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis

from tests.backends import postgres_database, redis_prefix
from tests.procs import agentctl, free_port


@pytest.fixture
def pg_url() -> Iterator[str]:
    """An empty PostgreSQL database (no schema yet)."""
    yield from postgres_database()


@pytest.fixture
def migrated_pg(pg_url: str) -> str:
    done = agentctl("db", "migrate", "--db", pg_url)
    assert done.returncode == 0, done.stderr
    return pg_url


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A counters URL for the machine's Redis with a unique `?prefix=`."""
    for url, prefix in redis_prefix():
        yield f"{url}?prefix={prefix}"


class PrivateRedis:
    """`redis-server` on a free port with no persistence: stop() is a real outage and
    start() brings back an empty server on the same port, as after a crash."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        message = "redis-server is not on PATH (needed to simulate a Redis outage)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI=true requires it")
        pytest.skip(message)
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()

"""The official openai npm SDK (run with node) through a real gateway.

`openai` is installed with npm into tests/ecosystem/node/ once per session. Without
node/npm the test skips, except under CI=true, where node is expected and its absence
fails the run.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.harness import IDENTITY, GatewayHarness

NODE_DIR = Path(__file__).parent / "node"
pytestmark = pytest.mark.slow


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true expects node and npm on the machine)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node_client() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        unavailable("node and npm are not installed")
    if not (NODE_DIR / "node_modules" / "openai" / "package.json").exists():
        done = subprocess.run(
            [npm or "npm", "install", "--no-audit", "--no-fund", "--no-package-lock"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            unavailable(f"npm install openai failed: {done.stderr[-500:]}")
    return NODE_DIR / "client.mjs"


async def test_openai_npm_sdk(gateway: GatewayHarness, node_client: Path) -> None:
    env = {
        **os.environ,
        "GATEWAY_URL": gateway.base_url,
        "AGENT_IDENTITY": IDENTITY,
        "SIM_KEY": uuid.uuid4().hex,
    }
    done = await asyncio.to_thread(
        subprocess.run,
        ["node", str(node_client)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    records = await gateway.records()
    by_id = {r["request_id"]: r for r in records}

    chat = by_id[seen["chat"]["request_id"]]
    assert seen["chat"]["agent"] == "bot-a" and seen["chat"]["content"]
    assert chat["prompt_tokens"] == seen["chat"]["usage"]["prompt_tokens"]
    assert chat["completion_tokens"] == seen["chat"]["usage"]["completion_tokens"]

    streams = [r for r in records if r["stream"]]
    assert len(streams) == 1 and streams[0]["usage_source"] == "reported"
    assert streams[0]["completion_tokens"] == len(seen["stream"]["text"].split())
    assert seen["stream"]["usage_chunks"] == 0  # injected usage stays hidden

    emb = [r for r in records if r["endpoint"] == "/v1/embeddings"]
    assert seen["embeddings"]["count"] == 2
    assert emb[0]["prompt_tokens"] == seen["embeddings"]["usage"]["prompt_tokens"]
    resp = [r for r in records if r["endpoint"] == "/v1/responses"]
    assert resp[0]["prompt_tokens"] == seen["responses"]["usage"]["input_tokens"]

    # the simulator's 429 reached the SDK unchanged and it retried: two records
    throttled = [r for r in records if r["status"] == 429]
    assert len(throttled) == 1 and throttled[0]["outcome"] == "upstream_error"
    assert seen["retried"]["usage"]["completion_tokens"] > 0

    assert seen["refused"] == {
        "status": 400,
        "code": "invalid_agent_identity",
        "type": ("BadRequestError"),
    }
    assert all(r["agent"] == "bot-a" for r in records if r["outcome"] != "refused")

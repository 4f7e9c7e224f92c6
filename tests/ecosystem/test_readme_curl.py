"""Every ```bash block of the README that calls curl runs, as written, against a test
gateway (only the documented address is swapped for the test's)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.harness import GatewayHarness

README = Path(__file__).resolve().parents[2] / "README.md"
DOCUMENTED = "http://127.0.0.1:8787"
BLOCK = re.compile(r"```bash\n(.*?)```", re.S)


def curl_blocks() -> list[str]:
    return [b for b in BLOCK.findall(README.read_text(encoding="utf-8")) if "curl " in b]


def test_the_readme_has_curl_examples() -> None:
    blocks = curl_blocks()
    assert blocks and all(DOCUMENTED in b for b in blocks)


@pytest.mark.parametrize("index", range(len(curl_blocks())))
async def test_readme_curl_example_runs(gateway: GatewayHarness, index: int) -> None:
    if shutil.which("curl") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("curl is not installed (CI=true expects it)")
        pytest.skip("curl is not installed")
    script = curl_blocks()[index].replace(DOCUMENTED, gateway.url)
    done = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    answers = documents(done.stdout)
    assert answers and all("error" not in a for a in answers), done.stdout
    records = await gateway.records()
    assert len(records) == len(answers)
    assert all(r["outcome"] == "served" and r["usage_source"] == "reported" for r in records)


def documents(text: str) -> list[dict[str, object]]:
    """The JSON documents curl printed, one after another."""
    decoder, found, pos = json.JSONDecoder(), [], 0
    while (pos := _skip_space(text, pos)) < len(text):
        value, pos = decoder.raw_decode(text, pos)
        found.append(value)
    return found


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos

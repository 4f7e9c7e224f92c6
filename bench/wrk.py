"""Drive `wrk` (one thread, pinned to the load core) and read its summary as JSON.

The Lua script builds each POST from a body template (a distinct prompt word per
request, as bench/load.py does) and a rotation of header sets (identities, agent
tokens), and in `done()` prints one JSON line with request count, duration, latency
percentiles and error counts, so nothing depends on wrk's human-readable output.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

from load import PLACEHOLDER
from servers import pinned

_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"non_2xx":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def _lua_string(value: str | bytes) -> str:
    text = value.decode() if isinstance(value, bytes) else value
    return "[==[" + text + "]==]"


def script(template: str, headers_list: list[dict[str, str]], start: int | None = None) -> str:
    """A Lua script: request n gets `word(n)` in place of PLACEHOLDER and header set n.

    n starts at a random offset, so successive runs do not replay the same prompts."""
    start = random.randrange(26**5) if start is None else start
    fmt = template.replace("%", "%%").replace(PLACEHOLDER, "%s")
    sets = []
    for headers in headers_list:
        pairs = ", ".join(f"[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in headers.items())
        sets.append("{" + pairs + "}")
    lines = [
        "wrk.method = 'POST'",
        f"local template = {_lua_string(fmt)}",
        "local sets = {" + ",\n".join(sets) + "}",
        f"local n = {start}",
        # The same words as load.word(n): base-26 letters, least significant first.
        "local function word(k)\n  local t = {}\n  for j = 1, 5 do\n"
        "    t[j] = string.char(97 + k % 26)\n    k = math.floor(k / 26)\n  end\n"
        "  return table.concat(t)\nend",
        "request = function()\n  n = n + 1\n"
        "  local headers = {}\n  for k, v in pairs(sets[n % #sets + 1]) do headers[k] = v end\n"
        "  return wrk.format(nil, nil, headers, string.format(template, word(n)))\nend",
    ]
    return "\n".join(lines) + "\n" + _DONE


def run(
    url: str,
    *,
    template: str,
    headers_list: list[dict[str, str]],
    concurrency: int,
    duration: float,
    core: int | None,
    workdir: Path,
) -> dict[str, Any]:
    """One bounded wrk run; returns its summary with `rps` and millisecond percentiles."""
    lua = workdir / f"wrk-{abs(hash((template, str(headers_list)))):x}.lua"
    lua.write_text(script(template, headers_list))
    seconds = max(round(duration), 1)
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s"]
    cmd += ["-s", str(lua), url]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds + 30, preexec_fn=pinned(core)
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line)
    elapsed = raw["duration_us"] / 1e6
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    return {
        "requests": raw["requests"],
        "elapsed_s": elapsed,
        "rps": raw["requests"] / elapsed if elapsed else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "non_2xx": raw["non_2xx"],
        "errors": errors,
    }

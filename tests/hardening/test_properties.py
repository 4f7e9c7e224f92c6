"""Properties over hostile input, beyond the grammar tests in tests/test_identity.py and
the fixed-sample split tests in tests/test_sse.py and tests/test_metering.py: generated
streams in every wire format cut anywhere (mid-line, mid-UTF-8), the policy loader on
arbitrary documents, body handling, forwarded headers and X-Forwarded-For."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from agentctl.config import Upstream
from agentctl.errors import GatewayError
from agentctl.facts import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES, RESPONSES, RequestFacts
from agentctl.gateway.metering import StreamMeter
from agentctl.gateway.proxies import TrustedProxies
from agentctl.gateway.reading import extract_facts, parse_body
from agentctl.gateway.routing import Route
from agentctl.gateway.upstream import upstream_headers
from agentctl.policy.loader import PolicyError, from_mapping, load_text
from agentctl.usage import Usage

FAST = settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12
)  # any Unicode: 2-, 3- and 4-byte UTF-8 sequences get cut too
ENDINGS = st.sampled_from([b"\n", b"\r\n", b"\r"])


def sse(obj: Any, ending: bytes, event: str | None = None) -> bytes:
    head = f"event: {event}".encode() + ending if event else b""
    return head + b"data: " + json.dumps(obj, ensure_ascii=False).encode() + ending + ending


def split(whole: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(whole) + 1) for c in cuts})
    return [whole[a:b] for a, b in zip([0, *points], [*points, len(whole)], strict=True)]


@st.composite
def streams(draw: st.DrawFn) -> tuple[str, bytes, Usage, str]:
    """(api, wire bytes, the usage it carries, the text it carries)."""
    api = draw(st.sampled_from([CHAT, RESPONSES, MESSAGES]))
    ending = draw(ENDINGS)
    parts = draw(st.lists(TEXT, min_size=1, max_size=6))
    prompt, completion = draw(st.integers(0, 10**6)), draw(st.integers(0, 10**6))
    out = []
    if api == CHAT:
        for p in parts:
            delta = {"choices": [{"index": 0, "delta": {"content": p}}], "usage": None}
            out.append(sse({"object": "chat.completion.chunk", **delta}, ending))
        totals = {"prompt_tokens": prompt, "completion_tokens": completion}
        out.append(
            sse({"choices": [], "usage": {**totals, "total_tokens": prompt + completion}}, ending)
        )
        out.append(b"data: [DONE]" + ending + ending)
    elif api == RESPONSES:
        for p in parts:
            out.append(sse({"type": "response.output_text.delta", "delta": p}, ending))
        usage = {"input_tokens": prompt, "output_tokens": completion}
        done = {"type": "response.completed", "response": {"usage": usage}}
        out.append(sse(done, ending, "response.completed"))
    else:
        start = {"type": "message_start", "message": {"usage": {"input_tokens": prompt}}}
        out.append(sse(start, ending, "message_start"))
        for p in parts:
            delta = {"type": "content_block_delta", "delta": {"type": "text_delta", "text": p}}
            out.append(sse(delta, ending, "content_block_delta"))
        end = {"type": "message_delta", "usage": {"output_tokens": completion}}
        out.append(sse(end, ending, "message_delta"))
        out.append(sse({"type": "message_stop"}, ending, "message_stop"))
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion)
    return api, b"".join(out), usage, "".join(parts)


@FAST
@given(streams(), st.lists(st.integers(min_value=0), max_size=40))
def test_any_chunking_of_any_stream_gives_the_same_bytes_and_usage(
    stream: tuple[str, bytes, Usage, str], cuts: list[int]
) -> None:
    api, whole, usage, _text = stream
    meter = StreamMeter(api)
    forwarded = b"".join(meter.feed(c) for c in split(whole, cuts)) + meter.finish()
    assert forwarded == whole  # byte for byte, however the network cut it
    assert meter.usage is not None
    assert (meter.usage.prompt_tokens, meter.usage.completion_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert forwarded.decode("utf-8")  # no UTF-8 sequence was torn apart on the way


@FAST
@given(st.binary(max_size=400), st.lists(st.integers(min_value=0), max_size=20))
def test_garbage_streams_never_raise_and_pass_through(raw: bytes, cuts: list[int]) -> None:
    for api in (CHAT, RESPONSES, MESSAGES):
        meter = StreamMeter(api)
        forwarded = b"".join(meter.feed(c) for c in split(raw, cuts)) + meter.finish()
        assert forwarded == raw


POLICY_KEYS = [
    "apiVersion",
    "defaults",
    "purposes",
    "owners",
    "agents",
    "budgets",
    "day",
    "month",
    "hour",
    "usd",
    "tokens",
    "requests",
    "rate",
    "rpm",
    "tpm",
    "burst",
    "models",
    "allow",
    "deny",
    "lane",
    "concurrency",
    "max_tokens",
    "breaker",
    "trust",
    "description",
    "enforce",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True),
    st.text(max_size=10),
    st.sampled_from(["agentctl/v1", "5", "0.01", "-1", "1e400", "gpt-*", "priority", "nan"]),
)
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(POLICY_KEYS) | st.text(max_size=6), inner, max_size=5),
    ),
    max_leaves=30,
)


@FAST
@given(st.dictionaries(st.sampled_from(POLICY_KEYS), DOCS, max_size=6))
def test_policy_loader_gives_a_policy_or_a_policy_error(doc: dict[str, Any]) -> None:
    doc.setdefault("apiVersion", "agentctl/v1")
    try:
        policy = from_mapping(doc)
    except PolicyError as exc:
        assert exc.issues  # every refusal names at least one place and reason
        assert all(issue.reason for issue in exc.issues)
    else:
        assert policy.version


@FAST
@given(st.text(max_size=300))
def test_policy_text_of_any_kind_gives_a_policy_or_a_policy_error(text: str) -> None:
    try:
        policy = load_text("apiVersion: agentctl/v1\n" + text)
    except PolicyError as exc:
        assert exc.issues
    else:
        assert policy.version


@FAST
@given(st.binary(max_size=300))
def test_any_body_bytes_give_an_object_or_a_400(raw: bytes) -> None:
    try:
        body = parse_body(raw)
    except GatewayError as err:
        assert err.status == 400
        assert err.code in ("invalid_json", "invalid_encoding")
    else:
        assert isinstance(body, dict)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=15,
)
FIELDS = ["model", "stream", "max_tokens", "max_completion_tokens", "max_output_tokens", "n"]


@FAST
@given(
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), JSON, max_size=6),
    st.sampled_from([CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES, MESSAGES]),
)
def test_any_json_object_gives_facts_or_a_400(body: dict[str, Any], endpoint: str) -> None:
    raw = json.dumps(body).encode()
    try:
        facts = extract_facts(parse_body(raw), len(raw), endpoint, "/v1/x")
    except GatewayError as err:
        assert err.status == 400
        assert err.param in (None, *FIELDS, "best_of")
    else:
        assert isinstance(facts, RequestFacts)
        assert facts.n >= 1 and facts.input_tokens_estimate >= 0


UPSTREAM = Upstream(name="u", base_url="http://127.0.0.1:9/v1")
ROUTE = Route(UPSTREAM, UPSTREAM.base_url + "/chat/completions", "gpt-4o-mini")
HEADER_TEXT = st.text(alphabet=st.characters(max_codepoint=0x2FF), max_size=20)


@FAST
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["X-A", "Authorization", "x-api-key", "Cookie"])
            | st.from_regex(r"\AX-[A-Za-z0-9-]{1,10}\Z"),
            HEADER_TEXT,
        ),
        max_size=8,
    )
)
def test_forwarded_headers_never_carry_control_bytes_or_client_credentials(
    pairs: list[tuple[str, str]],
) -> None:
    client = CIMultiDictProxy(CIMultiDict(pairs))
    try:
        out = upstream_headers(client, ROUTE, "sk-provider", forward_identity=True)
    except GatewayError as err:
        assert (err.status, err.code) == (400, "invalid_header")
        assert any((ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for _, v in pairs for ch in v)
        return
    for name, value in out.items():
        assert not any((ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for ch in value), name
    assert out.getall("Authorization") == ["Bearer sk-provider"]
    assert "x-api-key" not in out and "cookie" not in out


ADDRESSES = st.ip_addresses().map(str)


@FAST
@given(
    ADDRESSES,
    st.lists(ADDRESSES | st.text(max_size=8), max_size=5),
    st.lists(st.sampled_from(["10.0.0.0/8", "127.0.0.1", "::1", "192.168.0.0/16"]), max_size=3),
)
def test_the_client_is_the_peer_unless_a_trusted_proxy_vouches(
    peer: str, chain: list[str], trusted: list[str]
) -> None:
    proxies = TrustedProxies(trusted)
    headers = CIMultiDictProxy(CIMultiDict({"X-Forwarded-For": ", ".join(chain)}))
    client = proxies.client(peer, headers)
    if not proxies.trusts(peer):
        assert client == peer
        return
    assert client == peer or client in {str(ipaddress.ip_address(a)) for a in _ips(chain)}
    # everything to the right of the answer was a trusted hop
    hops = [str(ipaddress.ip_address(a)) for a in _ips(chain)]
    if client != peer and client in hops:
        right = hops[len(hops) - 1 - hops[::-1].index(client) + 1 :]
        assert all(proxies.trusts(h) for h in right)


def _ips(values: list[str]) -> list[str]:
    out = []
    for v in values:
        try:
            ipaddress.ip_address(v.strip())
        except ValueError:
            continue
        out.append(v.strip())
    return out

"""`parse_identity` / `format_identity`: the grammar, table-driven, plus properties."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agentctl.identity import (
    DEFAULT_PURPOSES,
    HEADER,
    Identity,
    IdentityError,
    format_identity,
    parse_identity,
    valid_value,
)

VALID = [
    ("name=bot-a; owner=team-ml; purpose=production", ("bot-a", "team-ml", "production", ())),
    ("purpose=test;owner=o;name=n", ("n", "o", "test", ())),
    ("NAME=n; Owner=o; PURPOSE=test", ("n", "o", "test", ())),
    ("name=n; owner=o; purpose=test;", ("n", "o", "test", ())),
    ("\tname=n ;  owner=o\t; purpose=test", ("n", "o", "test", ())),
    ("name=a.b_c-1; owner=0; purpose=batch", ("a.b_c-1", "0", "batch", ())),
    (
        "run=r1; name=n; Team-Lead=x9; owner=o; purpose=evaluation",
        ("n", "o", "evaluation", (("run", "r1"), ("team-lead", "x9"))),
    ),
    ("name=" + "a" * 64 + "; owner=o; purpose=staging", ("a" * 64, "o", "staging", ())),
    (
        "name=n; owner=o; purpose=test; " + "; ".join(f"k{i}=v" for i in range(5)),
        ("n", "o", "test", tuple((f"k{i}", "v") for i in range(5))),
    ),
    ("name=n; owner=o; purpose=test; " + "k" * 32 + "=v", ("n", "o", "test", (("k" * 32, "v"),))),
]

INVALID = [
    ("owner=o; purpose=test", "is missing name"),
    ("name=n; owner=o; purpose=test; name=m", "field 'name' appears twice"),
    ("name=N; owner=o; purpose=test", "field 'name' must be lowercase: did you mean 'n'?"),
    ("name=n; owner=o; purpose=Test", "field 'purpose' must be lowercase: did you mean 'test'?"),
    ("name=n\u043e; owner=o; purpose=test", "non-ASCII or control character ('\u043e', U+043E)"),
    ("name=n\x00; owner=o; purpose=test", "non-ASCII or control character (byte 0x00)"),
    ("name=n\x1b; owner=o; purpose=test", "non-ASCII or control character (byte 0x1B)"),
    ("name=n\x7f; owner=o; purpose=test", "non-ASCII or control character (byte 0x7F)"),
    ("name=n\n; owner=o; purpose=test", "non-ASCII or control character (byte 0x0A)"),
    ("name=n\udcff; owner=o; purpose=test", "non-ASCII or control character (byte 0xFF)"),
    ("name=" + "a" * 65 + "; owner=o; purpose=test", "field 'name' is 65 characters; at most 64"),
    ("name=n; owner=o; purpose=test; k=" + "v" * 500, "is longer than 512 bytes"),
    ("name=n; owner=o; purpose=test; " + "; ".join(f"k{i}=v" for i in range(6)), "9 fields"),
    ("name=; owner=o; purpose=test", "field 'name' is empty"),
    ("name=n;; owner=o; purpose=test", "has an empty field (';;')"),
    ("name=n; owner=o; purpose=prod", "purpose 'prod' is not one of"),
    ("name=n, owner=o; purpose=test", "must not contain ','"),
    ("", "is empty"),
    (";", "has an empty field"),
    ("name; owner=o; purpose=test", "field 'name' is not of the form key=value"),
    ("name =n; owner=o; purpose=test", "field 'name': no spaces around '='"),
    ("name= n; owner=o; purpose=test", "field 'name': no spaces around '='"),
    ("name=n; owner=o; purpose=test; -k=v", "key '-k' is invalid"),
    ("name=n; owner=o; purpose=test; " + "k" * 33 + "=v", "key '" + "k" * 33 + "' is invalid"),
    ("name=n; owner=o; purpose=test; k_1=v", "key 'k_1' is invalid"),
    ("name=n-; owner=o; purpose=test", "field 'name' has invalid value 'n-'"),
    ("name=a/b; owner=o; purpose=test", "field 'name' has invalid value 'a/b'"),
    ("name=a=b; owner=o; purpose=test", "field 'name' has invalid value 'a=b'"),
]


@pytest.mark.parametrize(("raw", "expected"), VALID)
def test_valid(raw: str, expected: tuple[str, str, str, tuple[tuple[str, str], ...]]) -> None:
    ident = parse_identity([raw])
    assert (ident.name, ident.owner, ident.purpose, ident.extensions) == expected
    assert (ident.verification, ident.key_id) == ("unverified", None)


@pytest.mark.parametrize(("raw", "fragment"), INVALID)
def test_invalid(raw: str, fragment: str) -> None:
    with pytest.raises(IdentityError) as info:
        parse_identity([raw])
    assert fragment in str(info.value)
    assert str(info.value).startswith(HEADER)
    assert (info.value.code, info.value.status) == ("invalid_agent_identity", 400)


def test_missing_is_401() -> None:
    with pytest.raises(IdentityError) as info:
        parse_identity([])
    assert (info.value.code, info.value.status) == ("missing_agent_identity", 401)


def test_two_lines_even_if_identical() -> None:
    line = "name=n; owner=o; purpose=test"
    with pytest.raises(IdentityError, match="sent 2 times"):
        parse_identity([line, line])


def test_custom_purposes() -> None:
    assert parse_identity(["name=n; owner=o; purpose=research"], frozenset({"research"}))
    with pytest.raises(IdentityError, match="is not one of: research"):
        parse_identity(["name=n; owner=o; purpose=test"], frozenset({"research"}))


def test_byte_limit_counts_bytes_not_characters() -> None:
    # 255 two-byte characters fit in 512 characters but not in 512 bytes
    with pytest.raises(IdentityError, match="longer than 512 bytes"):
        parse_identity(["name=" + "\u043e" * 255])


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        (
            raw,
            "; ".join(
                [f"name={e[0]}", f"owner={e[1]}", f"purpose={e[2]}"] + [f"{k}={v}" for k, v in e[3]]
            ),
        )
        for raw, e in VALID
    ],
)
def test_format_is_canonical(raw: str, canonical: str) -> None:
    ident = parse_identity([raw])
    assert format_identity(ident) == canonical == ident.header_value()
    assert parse_identity([format_identity(ident)]) == ident


def test_extras_mapping() -> None:
    ident = parse_identity(["name=n; owner=o; purpose=test; run=1; team=t"])
    assert ident.extras == {"run": "1", "team": "t"}


def test_canonical_form_of_a_long_compact_header_parses() -> None:
    v = "v" * 64
    raw = ";".join([f"name={v}", f"owner={v}", "purpose=test"] + [f"key-{i}={v}" for i in range(5)])
    assert len(raw) == 508
    ident = parse_identity([raw])
    assert parse_identity([format_identity(ident)]) == ident


# -- properties ----------------------------------------------------------------

VALUES = st.from_regex(r"[a-z0-9](?:[a-z0-9._-]{0,20}[a-z0-9])?", fullmatch=True)
KEYS = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True).filter(
    lambda k: k not in ("name", "owner", "purpose")
)


@st.composite
def identities(draw: st.DrawFn) -> Identity:
    keys = draw(st.lists(KEYS, max_size=5, unique=True))
    return Identity(
        draw(VALUES),
        draw(VALUES),
        draw(st.sampled_from(sorted(DEFAULT_PURPOSES))),
        tuple((k, draw(VALUES)) for k in keys),
    )


@settings(deadline=None)
@given(identities())
def test_round_trip(ident: Identity) -> None:
    text = format_identity(ident)
    assume(len(text) <= 512)
    assert parse_identity([text]) == ident
    assert all(valid_value(v) for v in (ident.name, ident.owner, ident.purpose))


@settings(deadline=None)
@given(identities(), st.randoms(use_true_random=False))
def test_field_order_and_key_case_do_not_matter(ident: Identity, rnd: object) -> None:
    fields = [("name", ident.name), ("owner", ident.owner), ("purpose", ident.purpose)]
    fields += list(ident.extensions)
    rnd.shuffle(fields)  # type: ignore[attr-defined]
    text = ";".join(f"{k.upper()}={v}" for k, v in fields)
    assume(len(text) <= 512)
    parsed = parse_identity([text])
    assert (parsed.name, parsed.owner, parsed.purpose) == (ident.name, ident.owner, ident.purpose)
    assert dict(parsed.extensions) == dict(ident.extensions)
    assert parse_identity([format_identity(parsed)]) == parsed


@settings(deadline=None)
@given(st.binary(max_size=600))
def test_any_header_bytes_give_identity_or_identity_error(raw: bytes) -> None:
    """aiohttp hands header bytes to the app decoded as UTF-8 with surrogateescape."""
    text = raw.decode("utf-8", "surrogateescape")
    try:
        ident = parse_identity([text])
    except IdentityError as exc:
        assert exc.status == 400
        return
    canonical = format_identity(ident)
    if len(canonical) <= 512:
        assert parse_identity([canonical]) == ident


@settings(deadline=None)
@given(st.text(max_size=80))
def test_any_text_value_is_validated_consistently(value: str) -> None:
    raw = f"name={value}; owner=o; purpose=test"
    try:
        ident = parse_identity([raw])
    except IdentityError:
        return
    assert valid_value(ident.name)

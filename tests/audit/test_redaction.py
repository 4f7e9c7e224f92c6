"""Redaction of prompt and completion text (the opt-in storage goes through this)."""

from __future__ import annotations

import pytest

from agentctl.audit.redaction import RedactionError, Redactor, luhn


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail ada.lovelace+ai@math.example.co.uk now", "mail [REDACTED:email] now"),
        ("key sk-proj-Abcdefghijklmnop0123456789", "key [REDACTED:api_key]"),
        ("key sk-ant-api03-abcdefghijklmnopqrstuv", "key [REDACTED:api_key]"),
        ("agk_0123456789abcdef_abcdefghijklmnopqrstuvwxyz", "[REDACTED:api_key]"),
        ("aws AKIAIOSFODNN7EXAMPLE.", "aws [REDACTED:api_key]."),
        ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "gh [REDACTED:api_key]"),
        (
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig",
            "Authorization: Bearer [REDACTED:api_key]",
        ),
        ("card 4111 1111 1111 1111 exp", "card [REDACTED:card] exp"),
        ("card 5500-0000-0000-0004", "card [REDACTED:card]"),
    ],
)
def test_built_in_detectors(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 1234567890123 shipped",  # 13 digits, fails Luhn
        "ts 1796083200000001",  # a timestamp that fails Luhn (1 in 10 would pass)
        "version 1.2.3, sk-short",  # too short to be a key
        "user@localhost has no domain",
        "the word Bearer alone",
    ],
)
def test_look_alikes_survive(text: str) -> None:
    assert Redactor().redact(text) == text


def test_custom_patterns_detector_choice_and_mask() -> None:
    redactor = Redactor(
        detect=("email",),
        custom=[r"\bACME-\d{4}\b", {"name": "employee", "pattern": r"E\d{6}"}],
        mask="<{kind}>",
    )
    text = "bob@corp.io filed ACME-1234 for E123456; card 4111111111111111 kept"
    assert (
        redactor.redact(text) == "<email> filed <custom> for <employee>; card 4111111111111111 kept"
    )


def test_nested_json_values() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "me@x.org"}]}],
        "n": 1,
    }
    out = Redactor().redact_value(body)
    assert out["messages"][0]["content"][0]["text"] == "[REDACTED:email]"
    assert (
        out["model"] == "gpt-4o"
        and out["n"] == 1
        and body["messages"][0]["content"][0]["text"] == "me@x.org"
    )


def test_bad_settings_fail_when_built() -> None:
    with pytest.raises(RedactionError, match="invalid"):
        Redactor(custom=["(unclosed"])
    with pytest.raises(RedactionError, match="unknown detector"):
        Redactor(detect=("phone",))


def test_luhn() -> None:
    assert luhn("4111111111111111") and luhn("79927398713") and not luhn("79927398710")

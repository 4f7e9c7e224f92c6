"""The `X-Agent-Identity` declaration: grammar, validation and the canonical form.

One canonical form (lowercase keys and values, fixed key order on output) so that
comparisons between a declaration, a credential binding and a policy scope are exact.
The parser never raises anything but `IdentityError`, whatever bytes it is given
(property-tested in tests/test_identity_fuzz.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

HEADER = "X-Agent-Identity"
REQUIRED = ("name", "owner", "purpose")
DEFAULT_PURPOSES = frozenset(
    {"production", "staging", "development", "batch", "evaluation", "test"}
)
MAX_PARAMS = 8
MAX_BYTES = 512  # excluding optional whitespace around ';'

MAX_VALUE = 64

_VALUE = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
_KEY = re.compile(r"[a-z][a-z0-9-]{0,31}")
VALID_VALUE_HINT = (
    "lowercase ASCII letters, digits, '.', '_' or '-', starting and ending with a letter "
    "or digit, at most 64 characters"
)


def value_ok(text: str) -> bool:
    """Whether `text` can be a name, owner or purpose in X-Agent-Identity."""
    return _VALUE.fullmatch(text) is not None


class IdentityError(ValueError):
    """A declaration that cannot be accepted. `code` is a stable error code."""

    def __init__(self, message: str, code: str = "invalid_agent_identity", status: int = 400):
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    owner: str
    purpose: str
    extensions: tuple[tuple[str, str], ...] = ()
    # "token" when a credential bound to this name was presented, else "unverified".
    verification: str = "unverified"
    key_id: str | None = field(default=None, compare=False)

    def header_value(self) -> str:
        return format_identity(self)

    @property
    def extras(self) -> dict[str, str]:
        return dict(self.extensions)


def format_identity(identity: Identity) -> str:
    parts = [f"name={identity.name}", f"owner={identity.owner}", f"purpose={identity.purpose}"]
    parts += [f"{k}={v}" for k, v in identity.extensions]
    return "; ".join(parts)


def _check_chars(raw: str) -> None:
    for ch in raw:
        code = ord(ch)
        if code > 126 or (code < 32 and ch != "\t") or code == 127:
            # The header arrives as latin-1 or with surrogate escapes: name the byte sent.
            if 0xDC80 <= code <= 0xDCFF:
                shown = f"byte 0x{code - 0xDC00:02X}"
            elif code < 256:
                shown = f"byte 0x{code:02X}"
            else:
                shown = f"{ch!r}, U+{code:04X}"
            raise IdentityError(
                f"{HEADER} contains a non-ASCII or control character ({shown}); "
                "values must be plain lowercase ASCII"
            )


def parse_identity(
    values: list[str] | tuple[str, ...],
    purposes: frozenset[str] = DEFAULT_PURPOSES,
) -> Identity:
    """Parse every line of the header (a list, so duplicate lines are caught).

    Raises `IdentityError` with status 401 when the header is absent and 400 when it
    is malformed; the message names the field and what would be valid.
    """
    if not values:
        raise IdentityError(
            f"missing {HEADER} header; send e.g. "
            f"'{HEADER}: name=my-bot; owner=my-team; purpose=production'",
            code="missing_agent_identity",
            status=401,
        )
    if len(values) > 1:
        raise IdentityError(f"{HEADER} was sent {len(values)} times; send exactly one header line")
    raw = values[0]
    # Measured without optional whitespace, so a header and its canonical form
    # (which adds "; " separators) are both within the limit or both over it.
    if len(raw.replace(" ", "").replace("\t", "").encode("utf-8", "surrogateescape")) > MAX_BYTES:
        raise IdentityError(f"{HEADER} is longer than {MAX_BYTES} bytes")
    _check_chars(raw)
    if "," in raw:
        raise IdentityError(f"{HEADER} must not contain ','; separate fields with ';'")
    params = [p.strip(" \t") for p in raw.split(";")]
    if params and params[-1] == "":
        params.pop()  # one trailing ';' is tolerated
    if not params:
        raise IdentityError(f"{HEADER} is empty; it needs name, owner and purpose")
    if len(params) > MAX_PARAMS:
        raise IdentityError(f"{HEADER} has {len(params)} fields; at most {MAX_PARAMS} allowed")

    fields: dict[str, str] = {}
    order: list[str] = []
    for param in params:
        if not param:
            raise IdentityError(f"{HEADER} has an empty field (';;'); remove it")
        key, sep, value = param.partition("=")
        key = key.lower()
        if not sep:
            raise IdentityError(f"{HEADER} field '{param}' is not of the form key=value")
        if key != key.strip() or value != value.strip():
            raise IdentityError(f"{HEADER} field '{key.strip()}': no spaces around '='")
        if not _KEY.fullmatch(key):
            raise IdentityError(
                f"{HEADER} key '{key}' is invalid; keys are letters, digits and '-', "
                "starting with a letter, at most 32 characters"
            )
        if key in fields:
            raise IdentityError(f"{HEADER} field '{key}' appears twice; send it once")
        if value == "":
            raise IdentityError(f"{HEADER} field '{key}' is empty; expected {VALID_VALUE_HINT}")
        if value != value.lower() and _VALUE.fullmatch(value.lower()):
            raise IdentityError(
                f"{HEADER} field '{key}' must be lowercase: did you mean '{value.lower()}'?"
            )
        if len(value) > MAX_VALUE:
            raise IdentityError(
                f"{HEADER} field '{key}' is {len(value)} characters; at most {MAX_VALUE}"
            )
        if not _VALUE.fullmatch(value):
            raise IdentityError(
                f"{HEADER} field '{key}' has invalid value '{value}'; expected {VALID_VALUE_HINT}"
            )
        fields[key] = value
        order.append(key)

    missing = [k for k in REQUIRED if k not in fields]
    if missing:
        raise IdentityError(
            f"{HEADER} is missing {', '.join(missing)}; expected "
            "'name=<agent>; owner=<team>; purpose=<purpose>'"
        )
    if fields["purpose"] not in purposes:
        raise IdentityError(
            f"{HEADER} purpose '{fields['purpose']}' is not one of: {', '.join(sorted(purposes))}"
        )
    extensions = tuple((k, fields[k]) for k in order if k not in REQUIRED)
    return Identity(fields["name"], fields["owner"], fields["purpose"], extensions)


def valid_value(value: str) -> bool:
    """True when `value` is a valid name/owner/purpose token (used by the CLI)."""
    return bool(_VALUE.fullmatch(value))

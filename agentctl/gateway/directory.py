"""Step 1 of the pipeline: who is calling. In-memory, no database round trip.

`Directory` holds the agents and active credentials loaded from the store; a poller
swaps in a fresh snapshot when the store's state version changes (kill switch and
registrations reach every gateway within one poll interval).

Rules (DESIGN.md section 3, docs/decisions.md "Identity"):
- A client credential (`Authorization: Bearer` or `x-api-key`) is either an agent
  token `agk_<key_id>_<secret>` or the gateway key. Without a gateway key configured
  (only allowed on loopback), any other credential is ignored: SDKs always send one.
- With a token, the identity comes from its binding; a declaration that disagrees is
  403 `identity_mismatch`, charged to the token's own agent. The header is optional.
- Without a token, the header is required. In `verify` mode a registered name must
  present its token (401 `agent_token_required`); unregistered names are served as
  `unverified`. In `declare` mode every valid declaration is served as `unverified`.
"""

from __future__ import annotations

import dataclasses
import hmac
import time
from collections.abc import Callable

from multidict import CIMultiDictProxy

from agentctl.errors import GatewayError
from agentctl.identity import HEADER, Identity, IdentityError, parse_identity
from agentctl.store.registry import KnownAgent, Registry
from agentctl.store.sql import TOKEN_PREFIX, hash_secret, split_token


class ClaimRefused(GatewayError):
    """A registered name claimed without its credential (never counts against it)."""

    def __init__(
        self, status: int, code: str, message: str, declared: Identity, param: str | None = HEADER
    ) -> None:
        super().__init__(status, code, message, param=param)
        self.claimed = declared.name
        # Audited under the name it claimed (verification "refused"), so the owner's
        # compliance report shows the attempts on its agents; trust never counts them.
        self.declared = dataclasses.replace(declared, verification="refused")


class UnknownKey(GatewayError):
    """A well-formed agent token whose key id this gateway has not loaded: it may be
    newer than the last poll (`agents register` / `rotate` a moment ago)."""

    def __init__(self, key_id: str, message: str) -> None:
        super().__init__(401, "invalid_agent_token", message)
        self.key_id = key_id


class IdentityMismatch(GatewayError):
    def __init__(self, message: str, token_agent: Identity, claimed: str) -> None:
        super().__init__(403, "identity_mismatch", message, param=HEADER)
        self.token_agent = token_agent
        self.claimed = claimed


def _presented_secret(headers: CIMultiDictProxy[str]) -> str | None:
    """The client's credential. Two different ones (two `Authorization` headers, or a
    bearer and an `x-api-key` that disagree) are refused: which one would an upstream
    or a log reader believe? The first one winning silently is how a token rides along."""
    found: list[str] = []
    for auth in headers.getall("Authorization", ()):
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            found.append(value.strip())
    found += [k.strip() for k in headers.getall("x-api-key", ()) if k.strip()]
    if not found:
        return None
    if len(found) > 1 and any(other != found[0] for other in found[1:]):
        raise GatewayError(
            400,
            "ambiguous_credentials",
            "the request carries more than one different credential (Authorization / "
            "x-api-key); send exactly one",
        )
    return found[0]


class Directory:
    def __init__(
        self,
        registry: Registry,
        *,
        mode: str,
        purposes: frozenset[str],
        gateway_key: str | None,
        on_mismatch: Callable[[IdentityMismatch], None] | None = None,
    ) -> None:
        self.registry = registry
        self.mode = mode
        self.purposes = purposes
        self.gateway_key = gateway_key
        self.on_mismatch = on_mismatch
        self._parsed: dict[str, Identity] = {}

    def replace(self, registry: Registry) -> None:
        self.registry = registry

    def agent(self, name: str) -> KnownAgent | None:
        return self.registry.agents.get(name)

    def declared(self, name: str) -> Identity | None:
        """An identity `name` was declared with lately (the parse cache, newest first);
        for admin views of unregistered agents. A scan: never on the request path."""
        for identity in reversed(self._parsed.values()):
            if identity.name == name:
                return identity
        return None

    def disable_locally(self, name: str, reason: str, actor: str) -> None:
        """Refuse `name` here at once; the store write follows (and the poll confirms)."""
        agent = self.registry.agents.get(name)
        if agent is None:
            agent = KnownAgent(name, "", "")
            self.registry.agents[name] = agent
        agent.status, agent.status_reason, agent.status_actor = "disabled", reason, actor

    def _parse(self, values: list[str]) -> Identity:
        if len(values) == 1:
            cached = self._parsed.get(values[0])
            if cached is not None:
                return cached
        identity = parse_identity(values, self.purposes)
        if len(self._parsed) > 10_000:
            self._parsed.clear()
        self._parsed[values[0]] = identity
        return identity

    def identify(self, headers: CIMultiDictProxy[str]) -> Identity:
        secret = _presented_secret(headers)
        values = headers.getall(HEADER, [])
        token_identity = None
        if secret is not None:
            token_identity = self._token_identity(secret)
            if (
                token_identity is None
                and self.gateway_key is not None
                and not hmac.compare_digest(secret.encode(), self.gateway_key.encode())
            ):
                raise GatewayError(
                    401,
                    "invalid_api_key",
                    "the API key is neither this gateway's key nor a valid agent token",
                )
        elif self.gateway_key is not None:
            raise GatewayError(
                401,
                "missing_api_key",
                "this gateway requires a key: send 'Authorization: Bearer <gateway key or "
                "agent token>'",
            )
        if token_identity is not None:
            if not values:
                return token_identity
            try:
                declared = self._parse(values)
            except IdentityError as err:
                raise GatewayError(err.status, err.code, str(err), param=HEADER) from None
            if (declared.name, declared.owner, declared.purpose) != (
                token_identity.name,
                token_identity.owner,
                token_identity.purpose,
            ):
                mismatch = IdentityMismatch(
                    f"the agent token is bound to name={token_identity.name}; "
                    f"owner={token_identity.owner}; purpose={token_identity.purpose} but the "
                    f"request declares name={declared.name}; owner={declared.owner}; "
                    f"purpose={declared.purpose}",
                    token_identity,
                    declared.name,
                )
                if self.on_mismatch is not None:
                    self.on_mismatch(mismatch)
                raise mismatch
            return Identity(
                declared.name,
                declared.owner,
                declared.purpose,
                declared.extensions,
                "token",
                token_identity.key_id,
            )
        try:
            declared = self._parse(values)
        except IdentityError as err:
            raise GatewayError(err.status, err.code, str(err), param=HEADER) from None
        agent = self.registry.agents.get(declared.name)
        if self.mode == "verify" and agent is not None and agent.registered:
            raise ClaimRefused(
                401,
                "agent_token_required",
                f"agent {declared.name!r} is registered: present its agent token as "
                "'Authorization: Bearer agk_...'",
                declared,
            )
        return declared

    def _token_identity(self, secret: str) -> Identity | None:
        parts = split_token(secret)
        if parts is None:
            if secret.startswith(TOKEN_PREFIX):  # meant as one: never served as unverified
                raise GatewayError(
                    401,
                    "invalid_agent_token",
                    "the agent token is malformed: it should read agk_<16-character key "
                    "id>_<secret>, as `agentctl agents register` printed it",
                )
            return None
        key_id, token_secret = parts
        cred = self.registry.credentials.get(key_id)
        expected = cred.secret_hash if cred is not None else "0" * 64
        ok = hmac.compare_digest(hash_secret(token_secret).encode(), expected.encode())
        expired = (
            cred is not None
            and cred.expires_at_us is not None
            and cred.expires_at_us <= time.time_ns() // 1000
        )
        if cred is None or not ok or expired:
            message = (
                "the agent token is unknown, revoked or expired; ask an operator for a new "
                f"one (key id {key_id})"
            )
            if cred is None:
                raise UnknownKey(key_id, message)
            owner = self.registry.agents.get(cred.agent)
            if owner is None:
                raise GatewayError(401, "invalid_agent_token", message)
            # A revoked, expired or mis-typed token of a known agent: recorded under that
            # agent (verification "refused"), so its owner sees the attempts in reports.
            tried = Identity(owner.name, owner.owner, owner.purpose, (), "token", key_id)
            raise ClaimRefused(401, "invalid_agent_token", message, tried, param=None)
        agent = self.registry.agents.get(cred.agent)
        if agent is None:
            raise GatewayError(401, "invalid_agent_token", "the agent token's agent is gone")
        return Identity(agent.name, agent.owner, agent.purpose, (), "token", key_id)

"""Policy: the YAML vocabulary, its resolution per identity, and the governor that
applies it on every request (model access, caps, rate limits, concurrency, budgets
reserved then settled, cost breakers). Pure and in-process; the gateway wires it."""

from agentctl.policy.access import ModelAccess, model_allowed, model_forms
from agentctl.policy.admission import Admission, BreakerTrip, ShadowHit, ratelimit_headers
from agentctl.policy.diff import Change, policy_changes
from agentctl.policy.governor import Governor
from agentctl.policy.loader import (
    PolicyError,
    PolicyIssue,
    PolicySet,
    empty_policy,
    from_mapping,
    load_files,
    load_text,
    load_texts,
)
from agentctl.policy.refusals import RULE_IDS
from agentctl.policy.resolve import EffectivePolicy, effective
from agentctl.policy.schema import PolicyDocument, policy_json_schema

__all__ = [
    "RULE_IDS",
    "Admission",
    "BreakerTrip",
    "Change",
    "EffectivePolicy",
    "Governor",
    "ModelAccess",
    "PolicyDocument",
    "PolicyError",
    "PolicyIssue",
    "PolicySet",
    "ShadowHit",
    "effective",
    "empty_policy",
    "from_mapping",
    "load_files",
    "load_text",
    "load_texts",
    "model_allowed",
    "model_forms",
    "policy_changes",
    "policy_json_schema",
    "ratelimit_headers",
]

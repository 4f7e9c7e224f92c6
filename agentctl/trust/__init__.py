"""Behavioural trust: O(1) detectors, a Beta score with forgetting, tiers with hysteresis.

Pure and in-process (stdlib only, no I/O): the gateway owns persistence and audit, the
engine owns decisions. Start at `engine.TrustEngine`; `prompt.prompt_hash` defines the
normalised hash in `RequestFacts.prompt_hash`; `docs/decisions-trust.md` has the design.
"""

from agentctl.trust.config import Tier, TrustConfig
from agentctl.trust.engine import TrustEngine
from agentctl.trust.events import TrustEvent
from agentctl.trust.gate import Gate, Observation
from agentctl.trust.prompt import prompt_hash

__all__ = ["Gate", "Observation", "Tier", "TrustConfig", "TrustEngine", "TrustEvent", "prompt_hash"]

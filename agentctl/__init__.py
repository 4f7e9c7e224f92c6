"""agentctl: an agent-native AI gateway and the operations CLI around it."""

__version__ = "0.1.0"

"""Audit you can hand to an auditor: chain verification, pruning, export, redaction,
the HTML compliance report and synthetic records for scale tests.

The records themselves, their hash chain, anchors and rollups live in `agentctl.store`
(the appender maintains them under the chain-head lock); this package reads them and
runs the operator-facing procedures on top.
"""

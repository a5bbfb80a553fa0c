"""Emulators of Slack, PagerDuty and SNS on loopback: used by the tests and by `opsbot dev`.
Beside the product: it imports bot/ and handlers/; they never import it (but `opsbot dev`).
"""

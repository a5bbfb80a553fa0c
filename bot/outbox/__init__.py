"""The outbox: every Slack and PagerDuty side effect, sent by a worker after the commit.
Infrastructure layer: imports only the infrastructure below it, never a domain.
"""

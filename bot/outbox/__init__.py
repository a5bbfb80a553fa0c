"""The outbox: every Slack and PagerDuty side effect, sent by a worker after the commit."""

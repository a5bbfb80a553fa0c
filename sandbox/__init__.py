"""Emulators of Slack, PagerDuty and SNS on loopback: used by the tests and by `opsbot dev`."""

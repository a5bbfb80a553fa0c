"""The HTTP edge: verify, parse, acknowledge fast, hand over to bot/; no AWS or PagerDuty calls."""

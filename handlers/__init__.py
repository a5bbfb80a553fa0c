"""The HTTP edge: verify, parse, acknowledge fast, hand over to bot/; no AWS or PagerDuty calls.
Below the composition root (bot.app, bot.cli), above the runtime and the domains.
"""

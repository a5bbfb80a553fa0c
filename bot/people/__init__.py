"""Who a Slack user is in PagerDuty: looked up by email, cached, or linked by hand.
Domain layer: imports the domains below it (docs/architecture.md, Layers) and infrastructure.
"""

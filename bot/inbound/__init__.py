"""What arrived from Slack and PagerDuty, kept by its id so that a retry is a no-op.
Domain layer: imports the domains below it (docs/architecture.md, Layers) and infrastructure.
"""

"""Feature flags: AWS AppConfig feature-flag profiles or SSM parameters, flipped from Slack.
Domain layer: imports the domains below it (docs/architecture.md, Layers) and infrastructure.
"""

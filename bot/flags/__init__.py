"""Feature flags: AWS AppConfig feature-flag profiles or SSM parameters, flipped from Slack."""

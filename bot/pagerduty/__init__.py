"""PagerDuty REST API v2 and webhooks v3, as opsbot uses them."""

"""PagerDuty REST API v2 and webhooks v3, as opsbot uses them.
Infrastructure layer: imports only the infrastructure below it, never a domain.
"""

"""Narrow constructors and functions over the outside world's clients (AWS, Slack, PagerDuty, TLS).
Infrastructure layer: imports only the infrastructure below it, never a domain.
"""

"""Who is on call: `/oncall`, the daily handoff, mentions in reminders.
Domain layer: imports the domains below it (docs/architecture.md, Layers) and infrastructure.
"""

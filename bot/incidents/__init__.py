"""Incidents: one per episode of an alarm (or a manual page), with their timeline.
Domain layer: imports the domains below it (docs/architecture.md, Layers) and infrastructure.
"""

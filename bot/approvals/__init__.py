"""Actions that wait for clicks: a confirmation, a second person's approval, or a cancel.
Domain layer: imports the domains below it (docs/architecture.md, Layers) and infrastructure.
"""

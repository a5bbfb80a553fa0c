"""Who did what, when, and how it ended: shared by every domain.
Domain layer: imports the domains below it (docs/architecture.md, Layers) and infrastructure.
"""

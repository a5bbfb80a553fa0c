"""The app registry: apps, their environments, who may change them, and what a change works with.
Domain layer: imports the domains below it (docs/architecture.md, Layers) and infrastructure.
"""

"""Releases: images from ECR to ECS services, watched, locked, reversible, audited.
Domain layer: imports the domains below it (docs/architecture.md, Layers) and infrastructure.
"""

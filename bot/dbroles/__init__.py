"""Database roles: /dbrole check and provision, through each environment's role-manager Lambda.
Domain layer: imports the domains below it (docs/architecture.md, Layers) and infrastructure.
"""

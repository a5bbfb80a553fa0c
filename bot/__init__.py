"""opsbot's product: the composition root (app, cli, runtime), the domains and the infrastructure.
Imports go one way, root > handlers > domains > infrastructure (docs/architecture.md, Layers).
"""

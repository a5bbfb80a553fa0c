"""CloudWatch alarms: parsing, routing and turning transitions into incidents.
Domain layer: imports the domains below it (docs/architecture.md, Layers) and infrastructure.
"""

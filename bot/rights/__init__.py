"""Who may do what: the one gate every incident action and admin task passes, whatever its door.
Domain layer: imports the domains below it (docs/architecture.md, Layers) and infrastructure.

Rights come from the config (`rights`, a route's own `rights`); who someone is
comes from Slack's signed payload, and what Slack knows of them (guest or not,
channel and group memberships) from the Web API, cached briefly.
"""

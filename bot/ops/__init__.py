"""Operating opsbot itself: its instances, its own failures, `/opsbot status`, start-up checks.
Domain layer: imports the domains below it (docs/architecture.md, Layers) and infrastructure.
"""

"""The sandbox console page, its styles and script, served by sandbox/console_routes.py."""

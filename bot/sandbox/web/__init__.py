"""The sandbox console page, its styles and script, served by handlers/console.py."""

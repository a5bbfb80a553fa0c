"""The sandbox console page, its styles and script, served by sandbox/console_routes.py.
Data files only; part of the sandbox, never imported by the product.
"""

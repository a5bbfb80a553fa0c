"""Persistence: the engine, sessions, the declarative base and the migrations.
Infrastructure layer: it knows no domain's tables (bot/models.py lists them for Alembic).
"""

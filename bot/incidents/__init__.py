"""Incidents: one per episode of an alarm (or a manual page), with their timeline."""

"""Maintenance windows: planned times when matching alarms are recorded and threaded, not paged."""

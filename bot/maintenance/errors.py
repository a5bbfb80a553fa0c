"""What goes wrong with a maintenance window, in words a person reads."""

from __future__ import annotations


class MaintenanceError(Exception):
    """A window that cannot be made or ended as asked; the message says why."""


class BadWindow(MaintenanceError):
    """The typed window does not parse or is out of bounds; nothing was stored."""


class WindowsChanged(MaintenanceError):
    """Other windows over the same alarms kept being made while this one was checked."""

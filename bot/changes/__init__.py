"""What opsbot changed on an app environment before an alarm, and how to undo it."""

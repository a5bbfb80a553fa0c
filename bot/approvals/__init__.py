"""Actions that wait for clicks: a confirmation, a second person's approval, or a cancel."""

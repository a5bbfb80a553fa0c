"""Who did what, when, and how it ended: shared by every domain."""

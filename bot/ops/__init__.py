"""Operating opsbot itself: its instances, its own failures, `/opsbot status`, start-up checks."""

"""App Home: what is open, who is on call, what changed today, for the person who opens it."""

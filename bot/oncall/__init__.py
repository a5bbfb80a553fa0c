"""Who is on call: `/oncall`, the daily handoff, mentions in reminders."""

"""Scheduled work (reminders, rollout watches, handoffs) on APScheduler 3.
Infrastructure layer: imports no domain; jobs get their dependencies passed in.

Jobs live in the `apscheduler_jobs` table of the service's own database, so
they survive restarts; with several instances only the leader (PostgreSQL
advisory lock) runs them.
"""

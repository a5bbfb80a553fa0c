"""Who a Slack user is in PagerDuty: looked up by email, cached, or linked by hand."""

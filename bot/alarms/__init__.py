"""CloudWatch alarms: parsing, routing and turning transitions into incidents."""

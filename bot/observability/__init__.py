"""How opsbot says it is failing: Prometheus metrics, JSON log lines, CloudWatch EMF lines."""

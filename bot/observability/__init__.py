"""How opsbot says it is failing: Prometheus metrics, JSON log lines, CloudWatch EMF lines.
Infrastructure layer, above the outbox it watches; never a domain.
"""

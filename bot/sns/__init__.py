"""Amazon SNS over HTTPS: the envelope, its signature, subscription confirmation.
Infrastructure layer: imports only the infrastructure below it, never a domain.
"""

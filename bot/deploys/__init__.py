"""Releases: images from ECR to ECS services, watched, locked, reversible, audited."""

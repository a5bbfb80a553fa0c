"""Amazon SNS over HTTPS: the envelope, its signature, subscription confirmation."""

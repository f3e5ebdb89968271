"""Durable execution on top of checkpoints: steps, side effects, retries, human input, leases, workers."""

"""Idempotent consumers: take one message, move one document, commit, ack."""

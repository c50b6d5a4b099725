"""Poller producers: detect new documents and publish one message per document."""

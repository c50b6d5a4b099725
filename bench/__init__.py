"""Benchmarks: runnable scripts that print numbers (``python -m bench.<name>``); see README.md."""

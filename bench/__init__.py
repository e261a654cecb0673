"""Benchmarks of the postback plugin: ``python -m bench`` prints one JSON line per scenario."""

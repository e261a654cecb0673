"""Delivery: sending postbacks, deciding what their answers mean, and pacing the sources' hosts."""

"""Evaluation suite for the RCA core: scenarios with a known root cause."""

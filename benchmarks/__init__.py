"""Benchmarks and validation studies (run as scripts; not part of the test suite)."""

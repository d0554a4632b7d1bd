"""Benchmarks (``smartcity bench ...``): they print figures and write JSON to bench-results/; never timed tests."""

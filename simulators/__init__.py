"""Simulated devices and load generators. They publish through the same wire contracts as real firmware."""

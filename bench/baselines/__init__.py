"""Baselines the benchmark measures yield-ensemble against: what users commonly write."""

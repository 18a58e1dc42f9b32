"""Benchmarks behind `standby bench ...`: each prints figures measured side by side in one run."""

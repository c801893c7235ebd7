"""Benchmarks behind ``python -m nsnet bench``."""

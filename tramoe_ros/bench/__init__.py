"""Benchmarks that print numbers (and ratios measured side by side in one run)."""

"""Dataset evaluations (statistics, contamination, quality, benchmarks)."""

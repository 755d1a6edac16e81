"""What a run's data becomes: exports (JSONL, Parquet, Hugging Face), rewards for RL, reports (yield, labels),
the taxonomy as a file, and grading a file outside a run."""

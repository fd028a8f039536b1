"""Each server's fine-tuning runs: the engine call, its progress, its outcome, the runner."""

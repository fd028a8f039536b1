"""Engine workers of the Redis job queue (`python -m engine worker`): engine.queue.worker."""

"""The engine core, shared by the CLI and the server: one composition's path (engine_core),
the scheduling policy (scheduler, fairness), the decode step's execution (batches), the
models in memory (model_cache), and the offline front end (composer)."""

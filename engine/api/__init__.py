"""What the bot process and the engine's front ends import: the wire schema, errors, limits,
settings, the client and its transport, the checks made before any work. Torch-free and
numpy-free, kept so by tests/test_layers.py: nothing here imports the engine outside it."""

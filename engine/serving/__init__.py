"""The engine process: the server, continuous batching across guilds, the model cache, the
seed reader and fine-tune children, render jobs."""

"""The engine process: the server (the engine core's stages on threads, and the wire), the
seed reader and fine-tune children, render jobs."""

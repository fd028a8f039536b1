"""Training a token language model (it knows nothing about music), its baseline and plots."""

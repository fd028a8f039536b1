"""Writing continuations: grammar-masked sampling, steering toward the seed, the prompt,
what a composition keeps of its seed, and the stages of one composition's music."""

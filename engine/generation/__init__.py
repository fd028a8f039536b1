"""Writing continuations: grammar-masked sampling, steering toward the seed, the prompt,
what a composition keeps of its seed, and the Composer that runs one start to finish."""

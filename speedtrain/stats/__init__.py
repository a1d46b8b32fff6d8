"""Statistics and the verdict rule: case summaries, noise, the seed rule. Torch-free."""

"""Golden-set evaluation: generate greedy answers and score them against expected ones."""

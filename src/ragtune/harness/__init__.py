"""The shared evaluation harness: cases, arms, scorers, runs and comparisons."""

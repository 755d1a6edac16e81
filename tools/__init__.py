"""Tools the agents use: reasoning capture, answer grading, token counting."""

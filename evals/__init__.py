"""Dataset evaluations (statistics, contamination, quality, benchmarks)."""

if __name__ == "evals":  # imported by folder name from a checkout: use the installed package
    from chimera.checkout_aliases import alias

    alias("evals")

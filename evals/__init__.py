"""Dataset evaluations (statistics, contamination, quality, benchmarks)."""

if __name__ != "chimera.evals":  # run from the repository root, `import evals` would load a second copy
    raise ImportError("this folder is the package chimera.evals: import chimera.evals, not evals")

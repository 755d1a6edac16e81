"""Example configs, shipped with the package so that `chimera init` can write them anywhere."""

if __name__ != "chimera.examples":  # run from the repository root, `import examples` would load a second copy
    raise ImportError("this folder is the package chimera.examples: import chimera.examples, not examples")

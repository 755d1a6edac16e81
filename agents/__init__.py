"""One module per role. Each is render prompt -> one model call -> parse reply."""

if __name__ != "chimera.agents":  # run from the repository root, `import agents` would load a second copy
    raise ImportError("this folder is the package chimera.agents: import chimera.agents, not agents")

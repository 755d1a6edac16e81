"""Tools the agents and graphs use: answer grading, problem and topic dedup, the vLLM launcher."""

if __name__ != "chimera.tools":  # run from the repository root, `import tools` would load a second copy
    raise ImportError("this folder is the package chimera.tools: import chimera.tools, not tools")

"""Tools the agents and graphs use: answer grading, problem and topic dedup, the vLLM launcher."""

if __name__ == "tools":  # imported by folder name from a checkout: use the installed package
    from chimera.checkout_aliases import alias

    alias("tools")

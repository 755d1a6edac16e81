"""Tools the agents use: reasoning capture, answer grading, token counting."""

if __name__ == "tools":  # imported by folder name from a checkout: use the installed package
    from chimera.checkout_aliases import alias

    alias("tools")

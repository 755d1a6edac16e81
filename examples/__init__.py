"""Example configs, shipped with the package so that `chimera init` can write them anywhere."""

if __name__ == "examples":  # imported by folder name from a checkout: use the installed package
    from chimera.checkout_aliases import alias

    alias("examples")

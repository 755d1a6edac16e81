"""One module per role. Each is render prompt -> one model call -> parse reply."""

if __name__ == "agents":  # imported by folder name from a checkout: use the installed package
    from chimera.checkout_aliases import alias

    alias("agents")

"""Example configs, shipped with the package so that `chimera init` can write them anywhere."""

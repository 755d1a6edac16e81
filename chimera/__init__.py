"""chimera: synthesize verified long chain-of-thought reasoning datasets."""

__version__ = "0.1.0"

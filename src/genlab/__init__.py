"""genlab: a reproducible lab for classic generative models."""

__version__ = "0.1.0"

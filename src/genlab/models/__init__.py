"""Architectures, one module per model, all with the contract of contract.py."""

"""Figures of a run: sample grids, traversals, the VAE figures and the run report (the render and report stages)."""

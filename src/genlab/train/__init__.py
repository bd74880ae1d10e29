"""Training: one loop (loop.py) and the steps that plug into it, one module per trainer."""

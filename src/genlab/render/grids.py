"""Moved to :mod:`genlab.grids` (a base module, so that `genlab.generate` writes grids without
importing `genlab.render`). Kept only for imports not yet switched; new code imports
``genlab.grids``."""

from genlab.grids import make_grid, save_gif, save_grid, save_image  # noqa: F401

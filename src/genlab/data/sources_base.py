"""What every image source of `prepare_images` returns and raises, shared by :mod:`.images`
and the sources in their own modules (:mod:`.lsun`, :mod:`.synthetic_rgb`), so that those
import this module and never :mod:`.images`, which imports them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from genlab.errors import GenlabError


class ImageSourceError(GenlabError, ValueError):
    """Local image data that cannot be used (bad IDX files, an empty folder, unreadable images)."""


@dataclass
class ImageSet:
    """Both splits of a source in the shared format, before the options are applied."""

    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    class_names: list[str]
    info: dict = field(default_factory=dict)  # source-specific facts for meta.json
    has_labels: bool = True  # False: the labels are zeros standing in (a flat folder, CelebA, one LSUN category)
    val: tuple[np.ndarray, np.ndarray] | None = None  # a held-out split of its own; None: carved from test


def limits(limit: int | None) -> tuple[int | None, int | None]:
    """(train, test) caps for the `limit` option."""
    return (None, None) if limit is None else (limit, max(1, limit // 6))


def val_size(n_test: int) -> int:
    """Images in the held-out `val` split beside a test split of `n_test`: half of it (at least 1).
    Rendered sources draw them anew; loaded sources move them out of test (which keeps >= 1)."""
    return max(1, n_test // 2)

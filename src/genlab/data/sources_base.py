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


def limits(limit: int | None) -> tuple[int | None, int | None]:
    """(train, test) caps for the `limit` option."""
    return (None, None) if limit is None else (limit, max(1, limit // 6))

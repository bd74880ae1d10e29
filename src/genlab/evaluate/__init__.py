"""Judge images with a trained classifier (see :mod:`genlab.evaluate.metrics`).

``evaluate_images`` and ``predict`` are imported lazily, so that importing
:mod:`genlab.evaluate.figures` alone does not pull in torchmetrics.
"""

from __future__ import annotations

from typing import Any

__all__ = ["evaluate_images", "predict"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from genlab.evaluate import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module 'genlab.evaluate' has no attribute {name!r}")

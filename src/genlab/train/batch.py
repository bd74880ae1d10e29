"""A training batch no larger than the training set (for sets whose size params cannot tell)."""

from __future__ import annotations

from typing import Any

from genlab.runtime import log


def fit_batch_size(cfg: Any, n_images: int, section: str) -> Any:
    """`cfg` (a params section with ``batch_size``) for a set of `n_images`: unchanged when the
    batch fits, else a copy with ``batch_size = n_images`` and one line that says so.

    The GAN and VAE loops drop the last partial batch, so a batch larger than the set would
    train nothing. `check_params` refuses this when the set's size is known up front; a
    ``folder:`` set's size is known only here, after `prepare_images`, and clamping keeps the
    run (and the README's folder example) going rather than failing after the data stage.
    """
    if cfg.batch_size <= n_images:
        return cfg
    log(f"{section}: {section}.batch_size={cfg.batch_size} is larger than the {n_images} training images: "
        f"using {n_images} (one step per epoch; set {section}.batch_size lower for more steps)")
    return cfg.model_copy(update={"batch_size": n_images})

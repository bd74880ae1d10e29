"""The latent prior both generators share: the standard normal N(0, I)."""

from __future__ import annotations

import torch


def sample_standard_normal(n: int, z_dim: int, device: torch.device,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, z_dim) draws from N(0, I) on `device`; a generator on another device (e.g. a
    seeded CPU generator for device-independent samples) draws there and is moved."""
    if generator is not None and generator.device != device:
        return torch.randn(n, z_dim, generator=generator, device=generator.device).to(device)
    return torch.randn(n, z_dim, generator=generator, device=device)

"""The ``interpret`` stage's library function: what the trained GAN's discriminator learned,
and what its latent space encodes.

* saliency: Grad-CAM, guided backprop and guided Grad-CAM on D for real test images and for
  generated ones, targets "real" and "fake" (:mod:`genlab.interpret.saliency`), and the share
  of Grad-CAM's heat that falls on the strokes (pixels that differ from the background);
* the linear probe on D's features vs a randomly initialised D vs raw pixels, with 100, 1,000
  and all labels (:mod:`genlab.interpret.probe`);
* latent vector arithmetic on measurable attributes for the GAN and the VAE
  (:mod:`genlab.interpret.arithmetic`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field, field_validator

from genlab.errors import InputError
from genlab.data.arrays import has_labels, load_meta, load_split
from genlab.interpret import arithmetic, probe, saliency
from genlab.interpret.discriminator import forward_logits, randomly_initialised
from genlab.params import StrictModel
from genlab.runtime import log, write_text

PROBE_ROWS = ("trained_D", "random_D", "pixels")


class InterpretParams(StrictModel):
    """The ``interpret`` section of params.yaml."""

    n_images: int = Field(6, gt=0, le=64)  # real and generated images in each saliency figure
    heat_images: int = Field(200, gt=0)  # test images over which the Grad-CAM heat share is measured
    probe_grid: int = Field(4, ge=1, le=8)  # each D layer max-pooled to at most grid x grid (Radford et al.: 4)
    probe_labels: list[int | None] = [100, 1000, None]  # label counts of the probe; null: all of probe_train
    probe_train: int | None = Field(5000, gt=0)  # the first N train images are the probe's pool (null: all)
    probe_test: int | None = Field(2000, gt=0)  # the first N test images score it (null: all)
    probe_c: float = Field(1.0, gt=0)  # inverse L2 strength of the logistic regression
    probe_max_iter: int = Field(100, gt=0)  # lbfgs iterations (a budget in steps)
    pool: int = Field(2000, ge=20)  # latents per vector-arithmetic pool (GAN samples, encoded VAE test images)
    quantile: float = Field(0.2, gt=0.0, le=0.5)  # "high" / "low" = top / bottom share of the pool
    attributes: list[str] = ["ink", "slant"]  # ink (stroke contrast) | slant (moment shear)
    target_class: str = "7"  # the arithmetic's targets: "low" samples of this class (else the commonest)
    noise: float = Field(0.25, ge=0.0)  # std of the noise around mean(A) - mean(B) + mean(C) in the figure
    vae: bool = True  # also the VAE's arithmetic (its encoder gives latents of real images)
    batch_size: int = Field(500, gt=0)

    @field_validator("attributes")
    @classmethod
    def _known_attributes(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if a not in arithmetic.MEASURES]
        if bad:
            raise InputError(f"unknown attribute {', '.join(bad)}; allowed: {', '.join(arithmetic.MEASURES)}")
        return v


def _unit(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 255.0


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def stroke_mask(images01: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    """Pixels that differ from the image's background (median luma) by more than `threshold`:
    the strokes of a digit, on black or on a textured colour background. (N, 1, H, W) bool."""
    return (arithmetic.contrast_map(images01) > threshold)[:, None]


def saliency_section(disc: torch.nn.Module, gen: torch.nn.Module, x_test: np.ndarray, y_test: np.ndarray,
                     cfg: InterpretParams, *, seed: int, device: torch.device, out_dir: Path) -> dict[str, float]:
    """The two saliency figures and the heat numbers."""
    conditional = bool(getattr(disc, "num_classes", None))
    gen_t = torch.Generator(device="cpu").manual_seed(seed)
    n = cfg.n_images
    # real test images, and generated ones (class-conditional models: labels 0, 1, 2, ...)
    real = torch.from_numpy(x_test[:n]).float().to(device) / 127.5 - 1
    real_y = torch.from_numpy(y_test[:n].astype(np.int64)).to(device) if conditional else None
    z = torch.randn(n, gen.z_dim, generator=gen_t).to(device)
    fake_y = (torch.arange(n) % gen.num_classes).to(device) if gen.num_classes else None
    fake = gen.decode(z, fake_y) * 2 - 1
    metrics: dict[str, float] = {}
    for name, x, y in (("real", real, real_y), ("generated", fake, fake_y if conditional else None)):
        with torch.no_grad():
            p_real = torch.sigmoid(forward_logits(disc, x, y)).cpu().numpy()
        maps = saliency.saliency_maps(disc, x, y)
        saliency.saliency_figure(((x + 1) / 2).cpu().numpy(), p_real, maps, out_dir / f"saliency_{name}.png",
                                 f"Where D looks: {name} images (Grad-CAM on D's last conv, guided backprop)")
        metrics[f"p_real_{name}"] = round(float(p_real.mean()), 4)
    # how much of Grad-CAM's heat lies on the strokes, against the strokes' share of the image
    m = min(cfg.heat_images, len(x_test))
    heat_x = torch.from_numpy(x_test[:m]).float() / 127.5 - 1
    heat_y = torch.from_numpy(y_test[:m].astype(np.int64)) if conditional else None
    mask = stroke_mask(_unit(x_test[:m]))
    if saliency.last_conv(disc) is not None:
        heat = np.concatenate([
            saliency.grad_cam(disc, heat_x[i:i + 100].to(device), "real",
                              heat_y[i:i + 100].to(device) if heat_y is not None else None).cpu().numpy()
            for i in range(0, m, 100)])
        metrics["gradcam_real_heat_on_strokes"] = round(saliency.heat_on_mask(heat, mask), 4)
        metrics["stroke_area"] = round(float(mask.mean()), 4)
    return metrics


def probe_section(disc: torch.nn.Module, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                  y_test: np.ndarray, cfg: InterpretParams, *, seed: int, device: torch.device, out_dir: Path
                  ) -> dict[str, dict[str, float]]:
    """The probe table ``{row: {"100": acc, "1000": acc, "all": acc}}`` and reports/.../probe.md."""
    xtr, ytr = x_train[: cfg.probe_train], y_train[: cfg.probe_train]
    xte, yte = x_test[: cfg.probe_test], y_test[: cfg.probe_test]
    feats = {}
    for row, d in (("trained_D", disc), ("random_D", randomly_initialised(disc, seed))):
        feats[row] = tuple(probe.disc_features(d, x, grid=cfg.probe_grid, batch_size=cfg.batch_size, device=device,
                                               desc=f"{row} features") for x in (xtr, xte))
    feats["pixels"] = (probe.pixel_features(xtr), probe.pixel_features(xte))
    table = probe.linear_probe(feats, ytr, yte, cfg.probe_labels, c=cfg.probe_c, max_iter=cfg.probe_max_iter,
                               seed=seed)
    cols = list(table["trained_D"])
    dims = {row: feats[row][0].shape[1] for row in feats}
    lines = [f"Linear probe (logistic regression) test accuracy on {len(yte)} test images; "
             f"'all' = the {len(ytr)} probe training images.", "",
             "| features | dims | " + " | ".join(f"{c} labels" for c in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    lines += [f"| {row} | {dims[row]} | " + " | ".join(f"{table[row][c]:.4f}" for c in cols) + " |" for row in PROBE_ROWS]
    write_text(out_dir / "probe.md", "\n".join(lines) + "\n")
    return table


def _judge(classifier: Any, device: torch.device) -> Any:
    from genlab.evaluate.metrics import predict

    return lambda images01: predict(_to_uint8(images01), classifier, device=device)[0]


def _no_grad(fn: Any) -> Any:
    return torch.no_grad()(fn)


def _target_class(name: str, class_names: list[str], classes: np.ndarray) -> int:
    """The index of class `name`, or the pool's commonest class when `name` is not a class of
    the data (LSUN categories) or has no member in the pool (a GAN that does not draw it)."""
    counts = np.bincount(classes, minlength=len(class_names))
    if name in class_names and counts[class_names.index(name)] > 0:
        return class_names.index(name)
    common = int(counts.argmax())
    log(f"interpret: no {name!r} in the pool; the arithmetic targets class {class_names[common]!r}")
    return common


def arithmetic_section(model_name: str, decode: Any, judge: Any, z: torch.Tensor, classes: np.ndarray,
                       class_names: list[str], cfg: InterpretParams, *, seed: int, out_dir: Path
                       ) -> dict[str, float]:
    pool_images = np.concatenate([decode(z[i:i + cfg.batch_size]).float().cpu().numpy()
                                  for i in range(0, len(z), cfg.batch_size)])
    target = _target_class(cfg.target_class, class_names, classes)
    results = [arithmetic.attribute_arithmetic(decode, judge, z, classes, pool_images=pool_images, attribute=a,
                                               target_class=target, class_names=class_names, quantile=cfg.quantile,
                                               noise=cfg.noise, seed=seed) for a in cfg.attributes]
    arithmetic.arithmetic_figure(results, out_dir / f"arithmetic_{model_name}.png",
                                 f"{model_name.upper()} latent arithmetic: mean(A) - mean(B) + mean(C)")
    return {k: v for r in results for k, v in r.metrics.items()}


def interpret(cfg: InterpretParams, *, seed: int, device: torch.device | str, gan_path: Path, data_dir: Path,
              classifier_path: Path, vae_path: Path | None, out_dir: Path) -> dict[str, Any]:
    """Every figure into `out_dir` and the metrics as one nested dict (``saliency``, ``probe``,
    ``arithmetic``)."""
    from genlab.models import gan as gan_model
    from genlab.models.classifier import load as load_classifier

    device = torch.device(device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gen, disc = gan_model.load(gan_path, device)
    x_train, y_train = load_split(data_dir, "train")
    x_test, y_test = load_split(data_dir, "test")
    meta = load_meta(data_dir)
    class_names = [str(c) for c in meta.get("class_names") or range(int(y_train.max()) + 1)]
    if tuple(x_test.shape[1:]) != tuple(gen.image_shape):
        raise InputError(f"the GAN makes {gen.image_shape} images but {data_dir} holds {tuple(x_test.shape[1:])}")
    metrics: dict[str, Any] = {}
    log("interpret: saliency maps")
    metrics["saliency"] = saliency_section(disc, gen, x_test, y_test, cfg, seed=seed, device=device, out_dir=out_dir)
    metrics["probe"], metrics["arithmetic"] = {}, {}
    if not has_labels(meta):  # the probe fits labels; the arithmetic's groups are the judge classifier's classes
        log(f"interpret: linear probe and latent arithmetic skipped: {meta.get('source')} has no labels")
        return metrics
    log("interpret: linear probe")
    metrics["probe"] = probe_section(disc, x_train, y_train, x_test, y_test, cfg, seed=seed, device=device,
                                     out_dir=out_dir)
    classifier = load_classifier(classifier_path, device=device)
    judge = _judge(classifier, device)
    if gen.num_classes:
        log("interpret: the GAN is class-conditional; its latent arithmetic is skipped")
    else:
        log("interpret: GAN latent arithmetic")
        z = gen.sample_latent(cfg.pool, torch.Generator(device=device).manual_seed(seed))
        classes = judge(np.concatenate([gen.decode(z[i:i + cfg.batch_size]).cpu().numpy()
                                        for i in range(0, cfg.pool, cfg.batch_size)]))
        metrics["arithmetic"]["gan"] = arithmetic_section("gan", _no_grad(gen.decode), judge, z, classes, class_names, cfg,
                                                          seed=seed, out_dir=out_dir)
    if cfg.vae and vae_path is not None and Path(vae_path).exists():
        from genlab.models import vae as vae_model

        vae = vae_model.load(vae_path, device)
        if vae.conditional or tuple(vae.image_shape) != tuple(x_test.shape[1:]):
            log("interpret: the VAE is conditional or of another image shape; its arithmetic is skipped")
        else:
            log("interpret: VAE latent arithmetic")
            xs = torch.from_numpy(x_test[: cfg.pool]).float().div(255)
            with torch.no_grad():
                z = torch.cat([vae.encode(xs[i:i + cfg.batch_size].to(device))[0]
                               for i in range(0, len(xs), cfg.batch_size)])
            metrics["arithmetic"]["vae"] = arithmetic_section("vae", _no_grad(vae.decode), judge, z,
                                                              y_test[: cfg.pool].astype(np.int64), class_names, cfg,
                                                              seed=seed, out_dir=out_dir)
    return metrics


def flat_metrics(metrics: dict[str, Any], prefix: str = "interpret") -> dict[str, float]:
    """The nested metrics as MLflow's flat slash keys (``interpret/probe/trained_D/100``)."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        key = f"{prefix}/{k}"
        if isinstance(v, dict):
            out.update(flat_metrics(v, key))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = float(v)
    return out

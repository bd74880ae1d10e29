"""Images/s of genlab's DCGAN loop against a straightforward reference loop, in one run.

The reference is the loop of the PyTorch DCGAN example: a torchvision-style Dataset that turns
each uint8 image into a PIL image and applies ``ToTensor`` + ``Normalize`` per sample, a
``DataLoader`` (shuffle, drop_last), three D forwards per step with D's weight gradients
computed in G's step too, and ``.item()`` on every loss every step. genlab's loop is
``genlab.train.gan.train_gan`` itself. Same architecture, batch size, loss and images.
Rounds alternate (reference, genlab, reference, ...) so that load from other processes hits
both alike; the median of each is reported, and their ratio.

    python benchmarks/gan_throughput.py                     # 28 px, CPU, params.yaml's gan architecture and batch
    python benchmarks/gan_throughput.py -S d_width=64       # the 64-128-256 discriminator of before issue 12
    OMP_NUM_THREADS=1 python benchmarks/gan_throughput.py   # steadier on a busy machine
    python benchmarks/gan_throughput.py --amp off           # both loops in fp32 (auto: bf16 on CUDA and AMX CPUs)
    python benchmarks/gan_throughput.py --amp off --ablate  # + the reference with genlab's choices one by one
    python benchmarks/gan_throughput.py --amp off --flops   # + each loop's convolution and matmul GFLOP/s
    python benchmarks/gan_throughput.py --device cuda --arch dcgan64 --size 64 --channels 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import genlab  # noqa: F401  (before torch: the OpenMP wait policy the stages run with)
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from genlab.models.gan import APPLIES
from genlab.models.gan import build as gan_build
from genlab.runtime import resolve_device
from genlab.train.gan import GanParams, train_gan
from genlab.train.loop import resolve_bf16


APPLIES_MNIST28 = {k for k, archs in APPLIES.items() if archs == ("mnist28",)}


class PilDataset(Dataset):
    """torchvision-dataset style: one PIL image per item, per-sample transforms."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        from torchvision import transforms

        self.images, self.labels = images, labels
        c = images.shape[1]
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * c, (0.5,) * c)])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        img = self.images[i]
        pil = Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0))
        return self.transform(pil), int(self.labels[i])


def reference_loop(cfg: GanParams, images: np.ndarray, labels: np.ndarray, device: torch.device, workers: int = 0,
                   *, tensors: bool = False, channels_last: bool = False, freeze_d: bool = False) -> float:
    """img/s of the PyTorch-example loop over all of `images` (one epoch, drop_last).

    ``--ablate`` switches genlab's choices on in it one at a time: `tensors` (the uint8 set on the
    device, a batch an index into it, no PIL / DataLoader), `channels_last`, `freeze_d` (no D weight
    gradients in G's step). All three = genlab's arithmetic without its EMA, fused Adam and bookkeeping."""
    mcfg = cfg.model_config_for_data(images.shape[1], images.shape[2], None)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net_g, net_d = (m.to(device).to(memory_format=fmt) for m in gan_build(mcfg))
    criterion = nn.BCEWithLogitsLoss()
    opt_d = torch.optim.Adam(net_d.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    opt_g = torch.optim.Adam(net_g.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    b = cfg.batch_size
    if tensors:
        data = torch.from_numpy(images).to(device)
        batches = (data[i].float().mul_(2 / 255).sub_(1) for i in torch.randperm(len(data), device=device).split(b)
                   if len(i) == b)
    else:
        loader = DataLoader(PilDataset(images, labels), batch_size=b, shuffle=True, drop_last=True, num_workers=workers)
        batches = (x for x, _ in loader)
    n = 0
    t0 = time.perf_counter()
    for real in batches:
        real = real.to(device).contiguous(memory_format=fmt)
        if freeze_d:
            net_d.requires_grad_(True)
        net_d.zero_grad()
        err_real = criterion(net_d(real), torch.full((b,), 1.0, device=device))
        err_real.backward()
        fake = net_g(torch.randn(b, mcfg.z_dim, device=device))
        err_fake = criterion(net_d(fake.detach()), torch.full((b,), 0.0, device=device))
        err_fake.backward()
        opt_d.step()
        if freeze_d:
            net_d.requires_grad_(False)
        net_g.zero_grad()
        err_g = criterion(net_d(fake), torch.full((b,), 1.0, device=device))
        err_g.backward()
        opt_g.step()
        _ = (err_real.item(), err_fake.item(), err_g.item())  # the example logs these every step
        n += b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def flops_per_image(cfg: GanParams, images: np.ndarray, labels: np.ndarray, device: torch.device, **kw) -> float:
    """Convolution and matmul FLOPs of one reference step (``**kw``: its --ablate switches), per image."""
    from torch.utils.flop_counter import FlopCounterMode

    b = cfg.batch_size
    with FlopCounterMode(display=False) as counter:
        reference_loop(cfg, images[:b], labels[:b], device, **kw)
    return counter.get_total_flops() / b


def genlab_loop(cfg: GanParams, images: np.ndarray, labels: np.ndarray, device: torch.device) -> float:
    res = train_gan(cfg, images, labels, seed=0, device=device)
    return res.metrics["gan/img_per_s"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="mnist28", choices=["mnist28", "dcgan64"])
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=None, help="default: params.yaml's gan.batch_size")
    p.add_argument("--params", default="params.yaml", help="the gan section of this file sets the architecture")
    p.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE", help="override gan.KEY")
    p.add_argument("--steps", type=int, default=15, help="training steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=0, help="reference DataLoader workers")
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help="genlab loop with torch.compile")
    p.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"], help="genlab loop autocast")
    p.add_argument("--data", default=None, help="a prepared data folder (default: random images)")
    p.add_argument("--ablate", action="store_true",
                   help="also the reference with genlab's data path, channels_last and a frozen D in G's step, "
                        "switched on one after another: where the ratio comes from")
    p.add_argument("--flops", action="store_true",
                   help="also the convolution and matmul FLOPs per image of each loop (torch's FlopCounterMode) "
                        "and the GFLOP/s they ran at")
    args = p.parse_args()

    device = resolve_device(args.device)
    import yaml

    section = dict(yaml.safe_load(open(args.params))["gan"]) if args.params else {}
    if args.arch != "mnist28" or not args.params:
        section = {k: v for k, v in section.items() if k not in APPLIES_MNIST28}
    for item in args.set:
        key, _, value = item.partition("=")
        section[key.removeprefix("gan.")] = yaml.safe_load(value)
    args.batch_size = args.batch_size or int(section.get("batch_size", 128))
    n = args.steps * args.batch_size
    if args.data:
        from genlab.data.arrays import load_split

        images, labels = load_split(args.data, "train")
        images, labels = images[:n], labels[:n]
    else:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (n, args.channels, args.size, args.size), dtype=np.uint8)
        labels = rng.integers(0, 10, n)
    cfg = GanParams.model_validate({**section, "arch": args.arch, "batch_size": args.batch_size, "epochs": 1,
                                    "sample_every": 10**6, "compile": args.compile, "amp": args.amp,
                                    "log_every": 10**6, "n_samples": 16, "limit": None})
    torch.manual_seed(0)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, genlab loop in "
          f"{'bf16' if resolve_bf16(args.amp, device) else 'fp32'} (reference: fp32), {args.arch} "
          f"(D width {cfg.model_config_for_data(images.shape[1], images.shape[2], None).d_first_width}, lr {cfg.lr}) "
          f"{images.shape[1]}x{images.shape[2]}x{images.shape[3]}, batch {args.batch_size}, {args.steps} steps/round")
    ref, ours = [], []
    genlab_loop(cfg.model_copy(update={"epochs": 1}), images[: 2 * args.batch_size], labels, device)  # warm-up
    reference_loop(cfg, images[: 2 * args.batch_size], labels, device, args.workers)
    for r in range(args.rounds):
        ref.append(reference_loop(cfg, images, labels, device, args.workers))
        ours.append(genlab_loop(cfg, images, labels, device))
        print(f"round {r + 1}: reference {ref[-1]:8.1f} img/s   genlab {ours[-1]:8.1f} img/s   ratio {ours[-1] / ref[-1]:.2f}x")
    mr, mo = statistics.median(ref), statistics.median(ours)
    print(f"median: reference {mr:.1f} img/s, genlab {mo:.1f} img/s, ratio {mo / mr:.2f}x")
    if args.ablate:
        steps = [("+ tensors on the device", dict(tensors=True, channels_last=False, freeze_d=False)),
                 ("+ channels_last", dict(tensors=True, channels_last=True, freeze_d=False)),
                 ("+ D frozen in G's step", dict(tensors=True, channels_last=True, freeze_d=True))]
        for name, kw in steps:
            rates = []
            for _ in range(args.rounds):
                rates.append(reference_loop(cfg, images, labels, device, args.workers, **kw))
            m = statistics.median(rates)
            print(f"reference {name:26s} {m:8.1f} img/s  {m / mr:.2f}x the reference  (genlab {mo / m:.2f}x this)")
    if args.flops:
        # genlab's arithmetic is the reference's with D frozen in G's step (Adam and the EMA are not counted)
        f_ref = flops_per_image(cfg, images, labels, device)
        f_ours = flops_per_image(cfg, images, labels, device, tensors=True, channels_last=True, freeze_d=True)
        print(f"convolutions + matmuls: reference {f_ref / 1e6:.1f} MFLOP per image at {f_ref * mr / 1e9:.0f} GFLOP/s, "
              f"genlab {f_ours / 1e6:.1f} MFLOP per image at {f_ours * mo / 1e9:.0f} GFLOP/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

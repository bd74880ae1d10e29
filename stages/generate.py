"""Stage generate: N samples from each trained generator, as uint8 .npy plus a grid figure."""

from pathlib import Path

from genlab.generate import GENERATORS, GenerateParams, default_checkpoint, generate_all
from genlab.params import load_params_or_exit
from genlab.runtime import resolve_device, seed_everything, write_json
from genlab.tracking import log_stage


def main() -> None:
    common, cfg = load_params_or_exit("generate", GenerateParams)
    seed_everything(common.seed)
    device = resolve_device(common.device)
    out_dir, report_dir = Path("data/generated"), Path("reports/generate")
    stats = generate_all(cfg, seed=common.seed, device=device, out_dir=out_dir, report_dir=report_dir,
                         models={name: default_checkpoint(name) for name in GENERATORS})
    write_json(out_dir / "meta.json", {"n_samples": cfg.n_samples, "seed": common.seed, "models": list(GENERATORS)})
    log_stage("generate", common, cfg, metrics=stats, tags={"device": device.type},
              artifacts=sorted(report_dir.glob("*.png")))


if __name__ == "__main__":
    main()

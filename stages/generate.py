"""Stage generate: N samples from each trained generator, as uint8 .npy plus a grid figure
(library: genlab.generate.generate_all)."""

from pathlib import Path

from genlab.generate import GENERATORS, GenerateParams, default_checkpoint, generate_all
from genlab.runtime import resolve_device, seed_everything, write_json
from genlab.stage import load_stage_params, run_stage
from genlab.tracking import log_stage

OUT, REPORTS = Path("data/generated"), Path("reports/generate")


def main() -> int:
    common, cfg = load_stage_params("generate", GenerateParams)
    seed_everything(common.seed)
    device = resolve_device(common.device)
    stats = generate_all(cfg, seed=common.seed, device=device, out_dir=OUT, report_dir=REPORTS,
                         models={name: default_checkpoint(name) for name in GENERATORS})
    write_json(OUT / "meta.json", {"n_samples": cfg.n_samples, "seed": common.seed, "models": list(GENERATORS)})
    log_stage("generate", common, cfg, metrics=stats, tags={"device": device.type},
              artifacts=sorted(REPORTS.glob("*.png")))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main))

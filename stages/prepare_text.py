"""Stage prepare_text: fold a text source to ASCII, build the vocabulary, split train/val
(library: genlab.data.text.prepare_text)."""

from genlab.data.text import PrepareTextParams, prepare_text
from genlab.runtime import seed_everything
from genlab.stage import load_stage_params, run_stage
from genlab.tracking import data_fingerprint, log_stage

OUT = "data/text"


def main() -> int:
    common, cfg = load_stage_params("prepare_text", PrepareTextParams)
    seed_everything(common.seed)
    meta = prepare_text(cfg, OUT)
    log_stage(
        "prepare_text", common, cfg,
        metrics={"text/n_chars": meta["n_chars"], "text/vocab_size": meta["vocab_size"],
                 "text/n_train": meta["n_train"], "text/n_val": meta["n_val"]},
        artifacts=[f"{OUT}/meta.json", f"{OUT}/vocab.json"],
        tags={"data_sha256": data_fingerprint(f"{OUT}/meta.json")},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
